//! The product on a real bus: commands over NATS request-reply, decided by the core, stored in
//! the log, answered and published.

use std::time::Duration;

use futures_util::StreamExt;
use omni_core::{Actor, Command, ConversationId, EventKind, SessionRef, TransferTarget};
use omni_proto::{Outcome, pb};
use prost::Message;

use crate::live::{Live, block_on};
use crate::support::{ANN, BOB, CHAT};

fn conversation(n: u128) -> ConversationId {
    ConversationId::from_u128(0xC0_0000 + n)
}

fn start(n: u128) -> Command {
    Command::StartConversation {
        conversation: conversation(n),
        queue: CHAT,
        skills: Vec::new(),
        customer: format!("customer {n}"),
    }
}

#[test]
fn a_new_conversation_is_offered_on_the_agents_desktop_accepted_and_the_live_projection_replays() {
    block_on(async {
        let live = Live::standard("offer-accept", 1).await;
        let mut desk = live.desktop(ANN).await;
        live.accepted(Actor::Agent(ANN), Command::SignIn { agent: ANN })
            .await;
        live.accepted(Actor::Customer, start(1)).await;

        let offer = desk
            .next("incoming_session_request", Duration::from_secs(5))
            .await;
        let EventKind::IncomingSessionRequest { session, agent, .. } = offer.event.kind else {
            panic!("not an offer: {offer:?}");
        };
        assert_eq!(agent, ANN);
        live.accepted(
            Actor::Agent(ANN),
            Command::Accept {
                agent: ANN,
                session,
            },
        )
        .await;
        let accepted = desk.next("session_accepted", Duration::from_secs(5)).await;
        assert!(
            matches!(accepted.event.kind, EventKind::SessionAccepted { agent, .. } if agent == ANN)
        );
        assert!(live.stop_and_verify().await > 0);
    });
}

#[test]
fn a_transfer_by_an_agent_who_is_not_primary_is_rejected_over_the_wire() {
    block_on(async {
        let live = Live::standard("transfer-not-primary", 1).await;
        let mut desk = live.desktop(ANN).await;
        live.accepted(Actor::Agent(ANN), Command::SignIn { agent: ANN })
            .await;
        live.accepted(Actor::Customer, start(2)).await;
        let offer = desk
            .next("incoming_session_request", Duration::from_secs(5))
            .await;
        let EventKind::IncomingSessionRequest { session, .. } = offer.event.kind else {
            panic!("not an offer");
        };
        live.accepted(
            Actor::Agent(ANN),
            Command::Accept {
                agent: ANN,
                session,
            },
        )
        .await;
        live.accepted(Actor::Agent(BOB), Command::SignIn { agent: BOB })
            .await;

        let outcome = live
            .send(
                Actor::Agent(BOB),
                Command::Transfer {
                    agent: BOB,
                    conversation: conversation(2),
                    target: TransferTarget::Queue(CHAT),
                },
            )
            .await;
        let Outcome::Rejected {
            code,
            reason,
            retryable,
        } = outcome
        else {
            panic!("a non-primary transfer was accepted: {outcome:?}");
        };
        assert_eq!(code, pb::RejectionCode::NotPrimary);
        assert!(reason.contains("is not the primary agent"), "{reason}");
        assert!(!retryable);
        live.stop().await;
    });
}

#[test]
fn a_retried_command_is_answered_from_the_first_attempt() {
    block_on(async {
        let live = Live::standard("retry", 1).await;
        let envelope = omni_proto::CommandEnvelope {
            command_id: uuid::Uuid::now_v7(),
            actor: Actor::Agent(ANN),
            correlation_id: None,
            command: Command::SignIn { agent: ANN },
        };
        let first = live.bus.command(&envelope).await.expect("answered");
        let again = live.bus.command(&envelope).await.expect("answered");
        let (
            Outcome::Accepted {
                events: a,
                replayed: false,
            },
            Outcome::Accepted {
                events: b,
                replayed: true,
            },
        ) = (&first, &again)
        else {
            panic!("expected an accept then a replay: {first:?} / {again:?}");
        };
        assert_eq!(
            a, b,
            "the retry names the same events at the same positions"
        );
        live.stop().await;
    });
}

#[test]
fn malformed_intake_is_rejected_naming_the_problem_and_dead_lettered() {
    block_on(async {
        let live = Live::standard("malformed", 1).await;
        let (client, mut dead) = watch_dead_letters(&live).await;
        let session = SessionRef {
            conversation: conversation(3),
            number: omni_core::SessionNo(1),
        };
        // Not protobuf at all, on every intake subject.
        for name in omni_proto::COMMAND_NAMES {
            let reply = client
                .request(omni_bus::subjects::intake(name), "{not protobuf".into())
                .await
                .expect("an answer");
            let reply = pb::CommandReply::decode(reply.payload).expect("a CommandReply");
            let Some(pb::command_reply::Outcome::Rejected(rejected)) = reply.outcome else {
                panic!("malformed bytes on {name} were not rejected");
            };
            assert_eq!(rejected.code, pb::RejectionCode::Malformed as i32);
            assert!(
                rejected.reason.contains("CommandRequest"),
                "{}",
                rejected.reason
            );
            let letter = tokio::time::timeout(Duration::from_secs(5), dead.next())
                .await
                .expect("a dead letter")
                .expect("open");
            assert_eq!(letter.payload.as_ref(), b"{not protobuf");
        }
        // A well-formed request with a bad id names the field.
        let mut request = pb::CommandRequest::try_from(&omni_proto::CommandEnvelope {
            command_id: uuid::Uuid::now_v7(),
            actor: Actor::Agent(ANN),
            correlation_id: None,
            command: Command::Accept {
                agent: ANN,
                session,
            },
        })
        .expect("encodable");
        if let Some(pb::command_request::Command::Accept(accept)) = &mut request.command {
            accept.agent_id = vec![1, 2, 3];
        }
        let reply = client
            .request(
                omni_bus::subjects::intake("accept"),
                request.encode_to_vec().into(),
            )
            .await
            .expect("an answer");
        let outcome = omni_proto::decode_reply(&reply.payload).expect("a reply");
        let Outcome::Rejected { code, reason, .. } = outcome else {
            panic!("accepted a bad id")
        };
        assert_eq!(code, pb::RejectionCode::Malformed);
        assert!(reason.contains("AgentSession.agent_id"), "{reason}");
        // And the service goes on serving.
        live.accepted(Actor::Agent(ANN), Command::SignIn { agent: ANN })
            .await;
        live.stop().await;
    });
}

/// Regression: `Engine::shutdown` returned while the conversation service's log reader (an
/// aborted task, not yet dropped) still held the log, so the log was left open ("still
/// shared; flushed but not closed") and reopening the data directory right after failed on
/// sled's lock.
#[test]
fn shutdown_closes_the_log_even_while_log_reads_are_in_flight() {
    block_on(async {
        for round in 0..8 {
            let live = Live::standard(&format!("shutdown-reads-{round}"), 1).await;
            let bus = live.bus.clone();
            let reads = tokio::spawn(async move {
                loop {
                    let _ = bus.read_log(1, 10_000).await;
                }
            });
            // Let the reads get going, then stop in the middle of them.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let log = live.stop_and_read_log().await;
            reads.abort();
            assert!(!log.is_empty());
        }
    });
}

#[test]
fn an_offer_that_times_out_is_offered_to_another_agent() {
    block_on(async {
        // 60 times the wall clock: the 120 s offer timeout passes in 2 s.
        let live = Live::standard("offer-timeout", 60).await;
        let mut ann = live.desktop(ANN).await;
        let mut bob = live.desktop(BOB).await;
        for agent in [ANN, BOB] {
            live.accepted(Actor::Agent(agent), Command::SignIn { agent })
                .await;
        }
        live.accepted(Actor::Customer, start(7)).await;

        // Both are free and never assigned: round robin ends the tie on the agent id, Ann.
        let offer = ann
            .next("incoming_session_request", Duration::from_secs(5))
            .await;
        let EventKind::IncomingSessionRequest {
            session,
            expires_at,
            ..
        } = offer.event.kind
        else {
            panic!("not an offer: {offer:?}");
        };
        assert_eq!(session.conversation, conversation(7));
        // Ann does nothing.
        let closed = ann.next("offer_closed", Duration::from_secs(5)).await;
        assert!(
            matches!(closed.event.kind, EventKind::OfferTimedOut { session: s, agent, .. } if s == session && agent == ANN),
            "{closed:?}"
        );
        assert!(closed.event.at >= expires_at, "timed out before it expired");
        assert!(closed.event.at.0 - offer.event.at.0 >= 120_000);

        let offer = bob
            .next("incoming_session_request", Duration::from_secs(5))
            .await;
        let EventKind::IncomingSessionRequest {
            session: again,
            agent,
            ..
        } = offer.event.kind
        else {
            panic!("not an offer: {offer:?}");
        };
        assert_eq!((agent, again.conversation), (BOB, conversation(7)));
        assert_eq!(again.number.0, session.number.0 + 1, "a new session");
        live.expect(
            Actor::Agent(BOB),
            Command::Accept {
                agent: BOB,
                session: again,
            },
            &["SessionAccepted", "PresenceUpdate"],
        )
        .await;
        // Ann's late answer finds nothing to accept.
        let late = live
            .send(
                Actor::Agent(ANN),
                Command::Accept {
                    agent: ANN,
                    session,
                },
            )
            .await;
        assert!(
            matches!(
                late,
                Outcome::Rejected {
                    code: pb::RejectionCode::NotAnOpenOffer,
                    ..
                }
            ),
            "{late:?}"
        );
        live.stop().await;
    });
}

/// A client of `live`'s bus, and every dead letter from now on.
async fn watch_dead_letters(live: &Live) -> (async_nats::Client, async_nats::Subscriber) {
    let client = live.bus.client().clone();
    let dead = client
        .subscribe(omni_bus::subjects::DEAD_ALL)
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    (client, dead)
}

/// The next dead letter, with its headers checked against `subject`.
async fn dead_letter_of(dead: &mut async_nats::Subscriber, subject: &str) -> async_nats::Message {
    let letter = tokio::time::timeout(Duration::from_secs(5), dead.next())
        .await
        .expect("a dead letter")
        .expect("open");
    assert_eq!(
        letter.subject.as_str(),
        omni_bus::subjects::dead_letter("conversations")
    );
    let headers = letter.headers.clone().expect("a dead letter has headers");
    assert_eq!(
        headers
            .get(omni_bus::headers::DEAD_SUBJECT)
            .map(|v| v.as_str()),
        Some(subject)
    );
    letter
}

#[test]
fn a_malformed_log_read_is_answered_with_an_error_and_dead_lettered() {
    block_on(async {
        let live = Live::standard("malformed-log-read", 1).await;
        let (client, mut dead) = watch_dead_letters(&live).await;

        let reply = client
            .request(omni_bus::subjects::LOG_READ, "{not protobuf".into())
            .await
            .expect("an answer");
        let batch = pb::LogBatch::decode(reply.payload).expect("a LogBatch");
        assert!(batch.events.is_empty());
        assert!(
            batch.error.contains("omnichannel.v1.ReadLog"),
            "{}",
            batch.error
        );
        let letter = dead_letter_of(&mut dead, omni_bus::subjects::LOG_READ).await;
        assert_eq!(letter.payload.as_ref(), b"{not protobuf");
        let reason = letter.headers.expect("headers");
        let reason = reason
            .get(omni_bus::headers::DEAD_REASON)
            .expect("a reason")
            .as_str();
        assert!(reason.contains("ReadLog"), "{reason}");

        // A well-formed read still works, and says where the log's head is.
        let batch = live.bus.read_log(0, 0).await.expect("a LogBatch");
        assert!(batch.error.is_empty(), "{}", batch.error);
        assert_eq!(batch.events.first().map(|e| e.position), Some(1));
        assert_eq!(batch.head, batch.events.len() as u64);
        live.stop().await;
    });
}

#[test]
fn a_command_on_another_commands_subject_is_malformed_naming_both() {
    block_on(async {
        let live = Live::standard("wrong-subject", 1).await;
        let (client, mut dead) = watch_dead_letters(&live).await;
        let request = omni_proto::encode_command(&omni_proto::CommandEnvelope {
            command_id: uuid::Uuid::now_v7(),
            actor: Actor::Agent(ANN),
            correlation_id: None,
            command: Command::SignIn { agent: ANN },
        })
        .expect("encodable");
        // A sign-in sent where sign-outs go, and where no command goes at all.
        for name in ["sign_out", "no_such_command"] {
            let subject = omni_bus::subjects::intake(name);
            let reply = client
                .request(subject.clone(), request.clone().into())
                .await
                .expect("an answer");
            let outcome = omni_proto::decode_reply(&reply.payload).expect("a reply");
            let Outcome::Rejected {
                code,
                reason,
                retryable,
            } = outcome
            else {
                panic!("a command on the wrong subject was accepted: {outcome:?}");
            };
            assert_eq!(code, pb::RejectionCode::Malformed);
            assert!(!retryable);
            assert!(
                reason.contains("'sign_in'") && reason.contains(&format!("'{name}'")),
                "{reason}"
            );
            let letter = dead_letter_of(&mut dead, &subject).await;
            assert_eq!(letter.payload.as_ref(), request.as_slice());
        }
        // Nothing was signed in by either.
        live.expect(
            Actor::Agent(ANN),
            Command::SignIn { agent: ANN },
            &["AgentSignedIn", "PresenceUpdate"],
        )
        .await;
        live.stop().await;
    });
}
