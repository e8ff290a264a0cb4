//! What happens in one conversation: the customer's plan, drawn on arrival, and the script of
//! each handling, composed when an agent takes the conversation.
//!
//! A plan holds what must happen once over the whole conversation (how many transfers, how
//! often it goes waiting, how it ends), so it survives transfers and revivals; a handling
//! script is what one agent does between taking the conversation and passing it on or ending
//! it. Every script ends with a step that moves the conversation on, which is what guarantees
//! that every simulated conversation eventually closes.

use std::ops::RangeInclusive;

use omni_core::{Channel, LinkEntity, LinkSlot, LinkedRecord, MediaAction, MediaKind, RecordId};
use rand::Rng;
use rand::rngs::SmallRng;

/// How the conversation ends once no transfer or waiting is left to play.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ending {
    /// The agent ends it.
    Agent,
    /// The customer ends it.
    Customer,
    /// The customer drops and does not come back (live chat waits out the reconnect window; a
    /// call ends at once).
    CustomerDrops,
}

/// What a customer's conversation will go through, drawn once on arrival.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Plan {
    pub transfers: u8,
    /// Times the agent closes the session to wait for the customer (persistent channels).
    pub waits: u8,
    pub ending: Ending,
    /// The customer's CRM records: every handling links the same ones, as agents would.
    pub contact: RecordId,
    pub account: RecordId,
    pub case: RecordId,
}

impl Plan {
    pub fn draw(channel: Channel, rng: &mut SmallRng) -> Plan {
        let transfers = match rng.random_range(0..100) {
            0..82 => 0,
            82..97 => 1,
            _ => 2,
        };
        let waits = if channel.is_persistent() {
            match rng.random_range(0..100) {
                0..50 => 0,
                50..85 => 1,
                _ => 2,
            }
        } else {
            0
        };
        let ending = match rng.random_range(0..100) {
            0..70 => Ending::Agent,
            // An asynchronous channel keeps no connection to drop: its customers end instead.
            70..90 => Ending::Customer,
            _ if channel.is_persistent() => Ending::Customer,
            _ => Ending::CustomerDrops,
        };
        Plan {
            transfers,
            waits,
            ending,
            contact: RecordId::from_u128(rng.random()),
            account: RecordId::from_u128(rng.random()),
            case: RecordId::from_u128(rng.random()),
        }
    }
}

/// One thing someone does in a conversation. Steps name no agent: the agent is the
/// conversation's primary when the step runs, so a script survives nothing it did not expect.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Step {
    /// The customer gives up if nobody has taken the conversation yet.
    Patience,
    /// A member of a pick-mode queue picks the conversation.
    Pick,
    Focus,
    CustomerMessage,
    /// The customer drops and comes back within the reconnect window (live chat).
    CustomerBlip,
    /// `by_focus`: link through the focused session instead of naming the conversation.
    Link {
        record: LinkedRecord,
        by_focus: bool,
    },
    Unlink(LinkSlot),
    Hold,
    Unhold,
    Media(MediaKind, MediaAction),
    StartConsult,
    EndConsult,
    /// To a colleague of the same queue, or to another queue of the same channel.
    Transfer,
    CloseSession,
    End,
    CustomerEnd,
    CustomerDrop,
    /// The customer of a waiting conversation writes again.
    CustomerReply,
    /// The last agent takes a waiting conversation back.
    ResumeWaiting,
    CompleteWrapUp,
    ForceClose,
}

impl Step {
    /// Steps that move the conversation on. When one is refused (the agent is disconnected,
    /// the customer is still away) it is tried again later, or the conversation would stall.
    pub fn must_happen(self) -> bool {
        matches!(
            self,
            Step::Transfer
                | Step::CloseSession
                | Step::End
                | Step::CustomerDrop
                | Step::CompleteWrapUp
                | Step::Pick
        )
    }
}

/// A handling script: steps, each with the milliseconds to wait after the previous one.
#[derive(Debug, Default)]
pub struct Script {
    pub steps: Vec<(i64, Step)>,
}

impl Script {
    fn then(&mut self, rng: &mut SmallRng, secs: RangeInclusive<i64>, step: Step) {
        let gap = rng.random_range(secs) * 1000;
        self.steps.push((gap, step));
    }

    /// An exchange with the customer: messages on text channels (the agent sometimes
    /// switches back to the tab, clearing the unread count), talk on calls.
    fn exchange(&mut self, rng: &mut SmallRng, channel: Channel) {
        if channel.is_call() {
            let talk = rng.random_range(30..=240) * 1000;
            if let Some((gap, _)) = self.steps.last_mut() {
                *gap += talk;
            }
            return;
        }
        // Asynchronous customers answer more slowly.
        let slowest = if channel.is_persistent() { 180 } else { 60 };
        for _ in 0..rng.random_range(1..=4) {
            self.then(rng, 5..=slowest, Step::CustomerMessage);
            if rng.random_bool(0.4) {
                self.then(rng, 2..=20, Step::Focus);
            }
        }
    }
}

/// What one agent does with the conversation, from taking it to passing it on or ending it.
pub fn handling(plan: &mut Plan, channel: Channel, rng: &mut SmallRng) -> Script {
    let call = channel.is_call();
    let mut s = Script::default();
    s.then(rng, 1..=5, Step::Focus);
    let recording = call && rng.random_bool(0.5);
    if recording {
        s.then(
            rng,
            1..=5,
            Step::Media(MediaKind::Recording, MediaAction::Start),
        );
    }
    if call && rng.random_bool(0.3) {
        s.then(
            rng,
            1..=5,
            Step::Media(MediaKind::Transcription, MediaAction::Start),
        );
    }
    s.exchange(rng, channel);
    if rng.random_bool(0.7) {
        let (first, second) = if rng.random_bool(0.7) {
            (plan.contact, plan.account)
        } else {
            (plan.account, plan.contact)
        };
        let entity = |record| {
            if record == plan.contact {
                LinkEntity::Contact
            } else {
                LinkEntity::Account
            }
        };
        let by_focus = rng.random_bool(0.3);
        s.then(
            rng,
            5..=30,
            Step::Link {
                record: LinkedRecord {
                    entity: entity(first),
                    record: first,
                },
                by_focus,
            },
        );
        // The agent found the better record: it replaces the first in the customer slot.
        if rng.random_bool(0.1) {
            s.then(
                rng,
                5..=30,
                Step::Link {
                    record: LinkedRecord {
                        entity: entity(second),
                        record: second,
                    },
                    by_focus: false,
                },
            );
        }
        if rng.random_bool(0.05) {
            s.then(rng, 5..=30, Step::Unlink(LinkSlot::Customer));
        }
    }
    if rng.random_bool(0.3) {
        let record = LinkedRecord {
            entity: LinkEntity::Incident,
            record: plan.case,
        };
        s.then(
            rng,
            10..=60,
            Step::Link {
                record,
                by_focus: false,
            },
        );
    }
    if call && rng.random_bool(0.35) {
        s.then(rng, 10..=60, Step::Hold);
        s.then(rng, 10..=90, Step::Unhold);
    }
    if recording && rng.random_bool(0.2) {
        s.then(
            rng,
            5..=30,
            Step::Media(MediaKind::Recording, MediaAction::Pause),
        );
        s.then(
            rng,
            5..=60,
            Step::Media(MediaKind::Recording, MediaAction::Resume),
        );
    }
    if rng.random_bool(0.15) {
        s.then(rng, 5..=30, Step::StartConsult);
        s.exchange(rng, channel);
        s.then(rng, 5..=60, Step::EndConsult);
    }
    if channel.has_reconnect_window() && rng.random_bool(0.08) {
        s.then(rng, 5..=60, Step::CustomerBlip);
    }
    s.exchange(rng, channel);
    if recording && rng.random_bool(0.3) {
        s.then(
            rng,
            1..=10,
            Step::Media(MediaKind::Recording, MediaAction::Stop),
        );
    }
    let last = if rng.random_bool(0.004) {
        Step::ForceClose
    } else if plan.transfers > 0 {
        plan.transfers -= 1;
        Step::Transfer
    } else if plan.waits > 0 {
        plan.waits -= 1;
        Step::CloseSession
    } else {
        match plan.ending {
            Ending::Agent => Step::End,
            Ending::Customer => Step::CustomerEnd,
            Ending::CustomerDrops => Step::CustomerDrop,
        }
    };
    s.then(rng, 5..=60, last);
    s
}
