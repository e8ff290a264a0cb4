//! One given / when / then test per rule of DOMAIN.md.

use omni_core::{
    AgentId, AssignmentMethod, BaseStatus, CallActivity, Channel, ClosureReason, Command,
    ConversationStatus, CustomPresence, EventKind, LinkEntity, LinkedRecord, MediaAction,
    MediaKind, MediaState, PresenceId, PresenceSource, QueueConfig, QueueId, RecordId, Rejection,
    RoutingMode, SessionNo, SessionRef, SessionStatus, StatusReason, SupervisorId, TabOutcome,
    TransferTarget, Workstream, WrapUpBlocking, next_deadline, unread_badge,
};
use uuid::Uuid;

use crate::support::*;

fn sms_case() -> Case {
    let mut case = Case::standard();
    case.sign_in(&[ANN, BOB]);
    case
}

mod conversation_lifecycle {
    use super::*;

    #[test]
    fn a_customer_request_opens_a_conversation_awaiting_assignment() {
        let mut case = Case::standard();
        let events = case.given(Command::StartConversation {
            conversation: conversation(1),
            queue: CHAT,
            skills: vec![],
            customer: "Ada".into(),
        });
        assert_eq!(names(&events), ["ConversationCreated"]);
        let c = case.conversation(conversation(1));
        assert_eq!(c.status, ConversationStatus::Open);
        assert_eq!(c.reason, StatusReason::AwaitingAgentAssignment);
        assert_eq!(c.channel, Channel::LiveChat);
    }

    #[test]
    fn accepting_the_offer_makes_it_active_and_holds_the_agents_capacity() {
        let mut case = Case::standard();
        case.sign_in(&[ANN]);
        let session = case.offered(1, CHAT, ANN);
        assert_eq!(case.agent(ANN).offered_units, 1);
        let events = case.given(Command::Accept {
            agent: ANN,
            session,
        });
        assert_eq!(names(&events), ["SessionAccepted", "PresenceUpdate"]);
        let c = case.conversation(conversation(1));
        assert_eq!(c.status, ConversationStatus::Active);
        assert_eq!(c.primary, Some(ANN));
        assert_eq!(case.agent(ANN).used_units, 1);
        assert_eq!(case.agent(ANN).offered_units, 0);
    }

    #[test]
    fn only_persistent_channels_wait_and_waiting_releases_capacity() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        let rejection = case.rejected(Command::CloseSession {
            agent: ANN,
            conversation: conversation(1),
        });
        assert!(matches!(rejection, Rejection::ChannelDoesNotSupport { .. }));

        case.active(2, SMS, BOB);
        let events = case.given(Command::CloseSession {
            agent: BOB,
            conversation: conversation(2),
        });
        assert_eq!(
            names(&events),
            [
                "SessionClosed",
                "CapacityReleased",
                "PresenceUpdate",
                "ConversationWaiting"
            ]
        );
        assert_eq!(
            case.conversation(conversation(2)).status,
            ConversationStatus::Waiting
        );
        assert_eq!(case.agent(BOB).used_units, 0);
    }

    #[test]
    fn a_customer_message_revives_a_waiting_conversation_to_open() {
        let mut case = sms_case();
        case.active(1, SMS, ANN);
        case.given(Command::CloseSession {
            agent: ANN,
            conversation: conversation(1),
        });
        let events = case.given(Command::CustomerMessage {
            conversation: conversation(1),
        });
        assert_eq!(names(&events), ["ConversationQueued"]);
        assert_eq!(
            case.conversation(conversation(1)).status,
            ConversationStatus::Open
        );
    }

    #[test]
    fn only_the_last_agent_revives_a_waiting_conversation_to_active() {
        let mut case = sms_case();
        case.active(1, SMS, ANN);
        case.given(Command::CloseSession {
            agent: ANN,
            conversation: conversation(1),
        });
        let rejection = case.rejected(Command::ResumeWaiting {
            agent: BOB,
            conversation: conversation(1),
        });
        assert_eq!(
            rejection,
            Rejection::NotLastAgent {
                conversation: conversation(1),
                expected: ANN
            }
        );
        case.given(Command::ResumeWaiting {
            agent: ANN,
            conversation: conversation(1),
        });
        let c = case.conversation(conversation(1));
        assert_eq!(c.status, ConversationStatus::Active);
        assert_eq!(c.primary, Some(ANN));
        assert_eq!(case.agent(ANN).used_units, 1);
    }

    #[test]
    fn ending_moves_to_wrap_up_which_holds_capacity_by_default() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        let events = case.given(Command::End {
            agent: ANN,
            conversation: conversation(1),
        });
        assert_eq!(names(&events), ["EndConversation"]);
        let c = case.conversation(conversation(1));
        assert_eq!(c.status, ConversationStatus::WrapUp);
        assert_eq!(c.reason, StatusReason::ConversationEndedByAgent);
        assert_eq!(case.agent(ANN).used_units, 1, "wrap-up blocks by default");
    }

    #[test]
    fn a_workstream_that_does_not_block_wrap_up_releases_capacity_as_it_starts() {
        let mut case = sms_case();
        let mut ws = Workstream::with_defaults(workstream_of(CHAT), "chat", Channel::LiveChat);
        ws.wrap_up_blocking = WrapUpBlocking::Never;
        case.given(Command::ConfigureWorkstream(ws));
        case.active(1, CHAT, ANN);
        case.given(Command::End {
            agent: ANN,
            conversation: conversation(1),
        });
        assert_eq!(case.agent(ANN).used_units, 0);
        assert_eq!(case.agent(ANN).presence.base, BaseStatus::Available);
    }

    #[test]
    fn custom_wrap_up_blocking_releases_capacity_when_its_time_is_up() {
        let mut case = sms_case();
        let mut ws = Workstream::with_defaults(workstream_of(CHAT), "chat", Channel::LiveChat);
        ws.wrap_up_blocking = WrapUpBlocking::ForSeconds(60);
        case.given(Command::ConfigureWorkstream(ws));
        case.active(1, CHAT, ANN);
        case.given(Command::End {
            agent: ANN,
            conversation: conversation(1),
        });
        assert_eq!(next_deadline(&case.world), Some(case.now.plus_secs(60)));
        case.advance_secs(59);
        assert!(case.given(Command::Tick).is_empty());
        case.advance_secs(1);
        let events = case.given(Command::Tick);
        assert_eq!(names(&events), ["CapacityReleased", "PresenceUpdate"]);
        assert_eq!(
            case.conversation(conversation(1)).status,
            ConversationStatus::WrapUp
        );
    }

    #[test]
    fn custom_wrap_up_blocking_outside_30_s_to_60_min_is_refused() {
        let case = Case::standard();
        let mut ws = Workstream::with_defaults(workstream_of(CHAT), "chat", Channel::LiveChat);
        ws.wrap_up_blocking = WrapUpBlocking::ForSeconds(29);
        let rejection = case.rejected(Command::ConfigureWorkstream(ws));
        assert!(rejection.to_string().contains("outside 30 s to 60 min"));
    }

    #[test]
    fn completing_wrap_up_closes_and_frees_everything() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        case.given(Command::End {
            agent: ANN,
            conversation: conversation(1),
        });
        case.given(Command::CompleteWrapUp {
            agent: ANN,
            conversation: conversation(1),
        });
        let c = case.conversation(conversation(1));
        assert_eq!(c.status, ConversationStatus::Closed);
        assert_eq!(c.reason, StatusReason::WrapUpCompleted);
        assert_eq!(c.sessions[0].status, SessionStatus::Completed);
        assert_eq!(case.agent(ANN).used_units, 0);
        assert!(case.agent(ANN).tabs.is_empty());
    }

    #[test]
    fn a_customer_who_leaves_before_assignment_closes_the_conversation() {
        let mut case = sms_case();
        let session = case.offered(1, CHAT, ANN);
        let events = case.given(Command::CustomerEnd {
            conversation: conversation(1),
        });
        assert_eq!(names(&events), ["OfferWithdrawn", "ConversationClosed"]);
        let c = case.conversation(conversation(1));
        assert_eq!(c.status, ConversationStatus::Closed);
        assert_eq!(c.reason, StatusReason::CustomerAbandoned);
        assert_eq!(case.agent(ANN).offered_units, 0);
        assert!(matches!(
            case.rejected(Command::Accept {
                agent: ANN,
                session
            }),
            Rejection::ConversationClosed { .. }
        ));
    }

    #[test]
    fn closed_is_final_and_every_later_request_is_rejected() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        case.given(Command::ForceClose {
            supervisor: SupervisorId::from_u128(9),
            conversation: conversation(1),
        });
        let id = conversation(1);
        for command in [
            Command::CustomerMessage { conversation: id },
            Command::CustomerEnd { conversation: id },
            Command::Route { conversation: id },
            Command::End {
                agent: ANN,
                conversation: id,
            },
            Command::Transfer {
                agent: ANN,
                conversation: id,
                target: TransferTarget::Queue(SMS),
            },
            Command::ForceClose {
                supervisor: SupervisorId::from_u128(9),
                conversation: id,
            },
        ] {
            assert_eq!(
                case.rejected(command),
                Rejection::ConversationClosed { conversation: id }
            );
        }
        assert_eq!(
            case.conversation(id).reason,
            StatusReason::ForceClosedBySupervisor
        );
    }

    #[test]
    fn an_unassigned_chat_auto_closes_after_20_minutes() {
        let mut case = Case::standard();
        case.given(Command::StartConversation {
            conversation: conversation(1),
            queue: CHAT,
            skills: vec![],
            customer: "Ada".into(),
        });
        assert_eq!(
            next_deadline(&case.world),
            Some(case.now.plus_secs(20 * 60))
        );
        case.advance_secs(20 * 60);
        case.given(Command::Tick);
        let c = case.conversation(conversation(1));
        assert_eq!(c.status, ConversationStatus::Closed);
        assert_eq!(c.reason, StatusReason::AutoClosedBySystem);
    }

    #[test]
    fn a_voice_call_moves_to_wrap_up_after_2_hours_and_closes_a_day_later() {
        let mut case = sms_case();
        case.active(1, VOICE, ANN);
        case.advance_secs(2 * 3600);
        case.given(Command::Tick);
        let c = case.conversation(conversation(1));
        assert_eq!(c.status, ConversationStatus::WrapUp);
        assert_eq!(c.call, CallActivity::Ended);
        case.advance_secs(24 * 3600);
        case.given(Command::Tick);
        assert_eq!(
            case.conversation(conversation(1)).status,
            ConversationStatus::Closed
        );
        assert_eq!(case.agent(ANN).used_units, 0);
    }

    #[test]
    fn a_waiting_sms_auto_closes_from_waiting_after_30_days() {
        let mut case = sms_case();
        case.active(1, SMS, ANN);
        case.given(Command::CloseSession {
            agent: ANN,
            conversation: conversation(1),
        });
        case.advance_secs(30 * 24 * 3600);
        case.given(Command::Tick);
        let c = case.conversation(conversation(1));
        assert_eq!(c.status, ConversationStatus::Closed);
        assert_eq!(c.reason, StatusReason::AutoClosedFromWaiting);
    }

    #[test]
    fn a_chat_customer_has_3_minutes_to_reconnect() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        case.active(2, CHAT, BOB);
        for n in [1, 2] {
            case.given(Command::CustomerDisconnect {
                conversation: conversation(n),
            });
        }
        case.advance_secs(179);
        case.given(Command::CustomerReconnect {
            conversation: conversation(1),
        });
        case.advance_secs(1);
        let events = case.given(Command::Tick);
        assert_eq!(names(&events), ["EndConversation"]);
        assert_eq!(
            case.conversation(conversation(1)).status,
            ConversationStatus::Active
        );
        let c2 = case.conversation(conversation(2));
        assert_eq!(c2.status, ConversationStatus::WrapUp);
        assert_eq!(c2.reason, StatusReason::CustomerDisconnected);
    }

    #[test]
    fn a_dropped_call_ends_at_once_and_async_channels_have_no_connection() {
        let mut case = sms_case();
        case.active(1, VOICE, ANN);
        case.given(Command::CustomerDisconnect {
            conversation: conversation(1),
        });
        assert_eq!(
            case.conversation(conversation(1)).status,
            ConversationStatus::WrapUp
        );
        case.active(2, SMS, BOB);
        assert!(matches!(
            case.rejected(Command::CustomerDisconnect {
                conversation: conversation(2)
            }),
            Rejection::ChannelDoesNotSupport { .. }
        ));
    }

    #[test]
    fn resolving_a_linked_case_closes_the_conversation() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        let record = RecordId::from_u128(77);
        case.given(Command::Link {
            agent: ANN,
            conversation: Some(conversation(1)),
            record: LinkedRecord {
                entity: LinkEntity::Incident,
                record,
            },
        });
        case.given(Command::ResolveCase { record });
        let c = case.conversation(conversation(1));
        assert_eq!(c.status, ConversationStatus::Closed);
        assert_eq!(c.reason, StatusReason::LinkedCaseResolved);
    }

    #[test]
    fn hold_and_unhold_apply_to_calls_and_hold_time_adds_up() {
        let mut case = sms_case();
        case.active(1, VOICE, ANN);
        case.given(Command::Hold {
            agent: ANN,
            conversation: conversation(1),
        });
        assert_eq!(case.conversation(conversation(1)).call, CallActivity::Hold);
        assert!(matches!(
            case.rejected(Command::Hold {
                agent: ANN,
                conversation: conversation(1)
            }),
            Rejection::CallState { .. }
        ));
        case.advance_secs(42);
        case.given(Command::Unhold {
            agent: ANN,
            conversation: conversation(1),
        });
        let c = case.conversation(conversation(1));
        assert_eq!(c.call, CallActivity::Talk);
        assert_eq!(c.hold_ms, 42_000);

        case.active(2, CHAT, BOB);
        assert!(matches!(
            case.rejected(Command::Hold {
                agent: BOB,
                conversation: conversation(2)
            }),
            Rejection::ChannelDoesNotSupport { .. }
        ));
    }

    #[test]
    fn recording_starts_pauses_resumes_stops_and_stops_when_the_call_ends() {
        let mut case = sms_case();
        case.active(1, VOICE, ANN);
        let media = |action| Command::Media {
            actor: omni_core::Actor::Agent(ANN),
            conversation: conversation(1),
            media: MediaKind::Recording,
            action,
        };
        assert!(matches!(
            case.rejected(media(MediaAction::Pause)),
            Rejection::MediaTransition { .. }
        ));
        for (action, state) in [
            (MediaAction::Start, MediaState::Running),
            (MediaAction::Pause, MediaState::Paused),
            (MediaAction::Resume, MediaState::Running),
        ] {
            case.given(media(action));
            assert_eq!(case.conversation(conversation(1)).recording, state);
        }
        let events = case.given(Command::End {
            agent: ANN,
            conversation: conversation(1),
        });
        assert_eq!(names(&events), ["MediaStateChanged", "EndConversation"]);
        assert_eq!(
            case.conversation(conversation(1)).recording,
            MediaState::Stopped
        );
        assert_eq!(
            case.conversation(conversation(1)).transcription,
            MediaState::NotStarted
        );
    }

    #[test]
    fn the_session_timer_resets_when_the_conversation_moves_to_wrap_up() {
        let mut case = sms_case();
        let session = case.active(1, CHAT, ANN);
        case.advance_secs(300);
        case.given(Command::End {
            agent: ANN,
            conversation: conversation(1),
        });
        let s = &case.conversation(conversation(1)).sessions[session.number.0 as usize - 1];
        assert_eq!(s.timer_started_at, case.now);
    }
}

mod sessions {
    use super::*;

    #[test]
    fn at_the_tab_limit_an_accept_opens_no_tab_but_a_notification() {
        let mut case = Case::standard();
        let mut one_tab = profile(ANN, 3);
        one_tab.max_sessions = 1;
        case.given(Command::ProvisionAgent(one_tab));
        case.sign_in(&[ANN]);
        case.active(1, CHAT, ANN);
        let session = case.offered(2, CHAT, ANN);
        let events = case.given(Command::Accept {
            agent: ANN,
            session,
        });
        assert!(matches!(
            events[0].kind,
            EventKind::SessionAccepted {
                tab: TabOutcome::LimitReached,
                ..
            }
        ));
        assert_eq!(case.agent(ANN).tabs.len(), 1);
        assert_eq!(case.agent(ANN).used_units, 2, "the work is still accepted");
    }

    #[test]
    fn a_consultant_receiving_the_transfer_gets_their_tab_re_activated() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        case.given(Command::StartConsult {
            agent: ANN,
            conversation: conversation(1),
            consultant: BOB,
        });
        case.given(Command::Transfer {
            agent: ANN,
            conversation: conversation(1),
            target: TransferTarget::Agent(BOB),
        });
        assert!(case.agent(BOB).tabs.contains(&conversation(1)));
        let session = SessionRef {
            conversation: conversation(1),
            number: case.conversation(conversation(1)).pending_offer.unwrap(),
        };
        let events = case.given(Command::Accept {
            agent: BOB,
            session,
        });
        assert!(matches!(
            events[0].kind,
            EventKind::SessionAccepted {
                tab: TabOutcome::Reactivated,
                ..
            }
        ));
        assert_eq!(case.agent(BOB).tabs.len(), 1);
    }

    #[test]
    fn unread_messages_count_up_unless_focused_and_reset_on_focus() {
        let mut case = sms_case();
        let session = case.active(1, CHAT, ANN);
        for expected in 1..=12 {
            case.given(Command::CustomerMessage {
                conversation: conversation(1),
            });
            assert_eq!(
                case.conversation(conversation(1)).sessions[0].unread,
                expected
            );
        }
        assert_eq!(unread_badge(12), "10+");
        case.given(Command::Focus {
            agent: ANN,
            session,
        });
        assert_eq!(case.conversation(conversation(1)).sessions[0].unread, 0);
        let events = case.given(Command::CustomerMessage {
            conversation: conversation(1),
        });
        assert!(events.is_empty(), "a focused session gains no unread");
    }

    #[test]
    fn an_agent_may_focus_only_their_own_worked_session() {
        let mut case = sms_case();
        let session = case.active(1, CHAT, ANN);
        assert_eq!(
            case.rejected(Command::Focus {
                agent: BOB,
                session
            }),
            Rejection::NotOwnSession {
                session,
                agent: BOB
            }
        );
    }
}

mod consult_and_transfer {
    use super::*;

    #[test]
    fn a_consultant_cannot_transfer_or_consult() {
        let mut case = Case::standard();
        case.sign_in(&[ANN, BOB, CID]);
        case.active(1, CHAT, ANN);
        case.given(Command::StartConsult {
            agent: ANN,
            conversation: conversation(1),
            consultant: BOB,
        });
        let transfer = case.rejected(Command::Transfer {
            agent: BOB,
            conversation: conversation(1),
            target: TransferTarget::Agent(CID),
        });
        assert_eq!(
            transfer.to_string(),
            format!(
                "agent {} is not the primary agent of conversation {}",
                BOB.0,
                conversation(1).0
            )
        );
        let consult = case.rejected(Command::StartConsult {
            agent: BOB,
            conversation: conversation(1),
            consultant: CID,
        });
        assert!(matches!(consult, Rejection::NotPrimary { .. }));
    }

    #[test]
    fn a_transfer_to_an_agent_releases_the_initiator_at_once_and_the_receiver_becomes_primary() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        let events = case.given(Command::Transfer {
            agent: ANN,
            conversation: conversation(1),
            target: TransferTarget::Agent(BOB),
        });
        assert_eq!(
            names(&events),
            [
                "SessionClosed",
                "CapacityReleased",
                "PresenceUpdate",
                "TransferInitiated",
                "IncomingSessionRequest"
            ]
        );
        assert!(matches!(
            events[0].kind,
            EventKind::SessionClosed {
                reason: ClosureReason::AgentTransferred,
                ..
            }
        ));
        assert_eq!(case.agent(ANN).used_units, 0);
        let session = SessionRef {
            conversation: conversation(1),
            number: SessionNo(2),
        };
        let events = case.given(Command::Accept {
            agent: BOB,
            session,
        });
        assert_eq!(
            names(&events),
            ["SessionAccepted", "TransferCompleted", "PresenceUpdate"]
        );
        let c = case.conversation(conversation(1));
        assert_eq!(c.primary, Some(BOB));
        assert_eq!(c.transfer_count, 1);
        assert_eq!(c.status, ConversationStatus::Active);
    }

    #[test]
    fn a_rejected_transfer_returns_the_conversation_to_its_queue() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        case.given(Command::Transfer {
            agent: ANN,
            conversation: conversation(1),
            target: TransferTarget::Agent(BOB),
        });
        case.given(Command::Reject {
            agent: BOB,
            session: SessionRef {
                conversation: conversation(1),
                number: SessionNo(2),
            },
        });
        let c = case.conversation(conversation(1));
        assert_eq!(c.status, ConversationStatus::Open);
        assert_eq!(c.transfer_from, None);
        assert!(
            case.world.queues[&CHAT]
                .backlog
                .iter()
                .any(|(_, id)| *id == conversation(1))
        );
    }

    #[test]
    fn a_transfer_to_a_queue_reopens_the_conversation_there() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        case.given(Command::Transfer {
            agent: ANN,
            conversation: conversation(1),
            target: TransferTarget::Queue(SMS),
        });
        let c = case.conversation(conversation(1));
        assert_eq!(c.status, ConversationStatus::Open);
        assert_eq!(c.queue, SMS);
        assert_eq!(
            c.sessions[0].closure,
            Some(ClosureReason::TransferredToQueue)
        );
        let events = case.given(Command::Route {
            conversation: conversation(1),
        });
        assert!(matches!(
            events[0].kind,
            EventKind::IncomingSessionRequest { agent, .. } if agent == BOB
        ));
    }

    /// Found by the simulation: a transfer offer withdrawn because the receiver dropped left
    /// the transfer pending, and the next routed acceptance reported a transfer to a stranger.
    #[test]
    fn regression_a_withdrawn_transfer_offer_ends_the_transfer() {
        let mut case = Case::standard();
        case.sign_in(&[ANN, BOB, CID]);
        case.active(1, CHAT, ANN);
        case.given(Command::Transfer {
            agent: ANN,
            conversation: conversation(1),
            target: TransferTarget::Agent(BOB),
        });
        let events = case.given(Command::Disconnect { agent: BOB });
        assert_eq!(
            names(&events),
            [
                "AgentDisconnected",
                "PresenceUpdate",
                "OfferWithdrawn",
                "ConversationQueued"
            ]
        );
        assert_eq!(case.conversation(conversation(1)).transfer_from, None);
        let events = case.given(Command::Route {
            conversation: conversation(1),
        });
        let EventKind::IncomingSessionRequest { session, agent, .. } = events[0].kind else {
            panic!("routed: {events:?}");
        };
        let events = case.given(Command::Accept { agent, session });
        assert_eq!(names(&events), ["SessionAccepted", "PresenceUpdate"]);
    }

    /// DOMAIN.md leaves open whether a transfer to a queue nobody staffs closes the
    /// conversation or lets it wait. We refuse it: the agent keeps the customer.
    #[test]
    fn a_transfer_to_a_queue_without_agents_is_refused_and_the_agent_keeps_it() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        assert_eq!(
            case.rejected(Command::Transfer {
                agent: ANN,
                conversation: conversation(1),
                target: TransferTarget::Queue(EMPTY),
            }),
            Rejection::QueueHasNoAgents {
                queue: EMPTY,
                conversation: conversation(1)
            }
        );
    }

    #[test]
    fn consults_use_no_capacity_and_stop_at_five_consultants() {
        let mut case = Case::standard();
        let agents: Vec<AgentId> = (0..7).map(|n| AgentId::from_u128(0xB0 + n)).collect();
        for &agent in &agents {
            case.given(Command::ProvisionAgent(profile(agent, 2)));
            case.given(Command::AddAgentToQueue { queue: CHAT, agent });
        }
        case.sign_in(&agents);
        case.active(1, CHAT, agents[0]);
        for &consultant in &agents[1..6] {
            case.given(Command::StartConsult {
                agent: agents[0],
                conversation: conversation(1),
                consultant,
            });
            assert_eq!(case.agent(consultant).used_units, 0);
        }
        assert_eq!(
            case.rejected(Command::StartConsult {
                agent: agents[0],
                conversation: conversation(1),
                consultant: agents[6],
            }),
            Rejection::TooManyConsultants {
                conversation: conversation(1),
                max: 5
            }
        );
        case.given(Command::EndConsult {
            agent: agents[3],
            conversation: conversation(1),
            consultant: agents[3],
        });
        assert_eq!(case.conversation(conversation(1)).consultants.len(), 4);
    }

    #[test]
    fn agents_in_dnd_away_or_offline_are_not_transfer_or_consult_targets() {
        let mut case = sms_case();
        case.sign_in(&[CID]);
        case.active(1, CHAT, ANN);
        for (presence, base) in [
            (PresenceId::BUSY_DND, BaseStatus::BusyDnd),
            (PresenceId::AWAY, BaseStatus::Away),
            (PresenceId::OFFLINE, BaseStatus::Offline),
        ] {
            case.given(Command::SetPresence {
                agent: BOB,
                presence,
            });
            assert_eq!(
                case.rejected(Command::StartConsult {
                    agent: ANN,
                    conversation: conversation(1),
                    consultant: BOB,
                }),
                Rejection::TargetUnavailable { agent: BOB, base }
            );
            assert!(matches!(
                case.rejected(Command::Transfer {
                    agent: ANN,
                    conversation: conversation(1),
                    target: TransferTarget::Agent(BOB),
                }),
                Rejection::TargetUnavailable { .. }
            ));
        }
        assert!(matches!(
            case.rejected(Command::StartConsult {
                agent: ANN,
                conversation: conversation(1),
                consultant: DEE,
            }),
            Rejection::NotSignedIn(_)
        ));
    }
}

mod presence {
    use super::*;

    #[test]
    fn presence_follows_capacity_available_busy_dnd_and_back() {
        let mut case = sms_case();
        assert_eq!(case.agent(ANN).presence.base, BaseStatus::Available);
        case.active(1, SMS, ANN);
        assert_eq!(case.agent(ANN).presence.base, BaseStatus::Busy);
        case.active(2, SMS, ANN);
        case.active(3, SMS, ANN);
        assert_eq!(case.agent(ANN).presence.base, BaseStatus::BusyDnd);
        assert_eq!(case.agent(ANN).presence.id, PresenceId::BUSY_DND);
        for n in 1..=3 {
            case.given(Command::CloseSession {
                agent: ANN,
                conversation: conversation(n),
            });
        }
        assert_eq!(case.agent(ANN).presence.base, BaseStatus::Available);
        assert_eq!(case.agent(ANN).presence_source, PresenceSource::System);
    }

    #[test]
    fn a_manual_away_sticks_while_a_manual_busy_is_recalculated_at_the_next_close() {
        let mut case = sms_case();
        case.active(1, SMS, ANN);
        case.given(Command::SetPresence {
            agent: ANN,
            presence: PresenceId::AWAY,
        });
        case.given(Command::CloseSession {
            agent: ANN,
            conversation: conversation(1),
        });
        assert_eq!(case.agent(ANN).presence.base, BaseStatus::Away);

        case.active(2, SMS, BOB);
        case.given(Command::SetPresence {
            agent: BOB,
            presence: PresenceId::AVAILABLE,
        });
        assert_eq!(case.agent(BOB).presence_source, PresenceSource::Agent);
        case.given(Command::CloseSession {
            agent: BOB,
            conversation: conversation(2),
        });
        assert_eq!(case.agent(BOB).presence.base, BaseStatus::Available);
        assert_eq!(case.agent(BOB).presence_source, PresenceSource::System);
    }

    #[test]
    fn sign_out_clears_the_manual_override_and_waits_for_work_to_finish() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        assert_eq!(
            case.rejected(Command::SignOut { agent: ANN }),
            Rejection::StillHandling {
                agent: ANN,
                count: 1
            }
        );
        case.given(Command::SetPresence {
            agent: BOB,
            presence: PresenceId::AWAY,
        });
        case.given(Command::SignOut { agent: BOB });
        let bob = case.agent(BOB);
        assert!(!bob.signed_in);
        assert!(!bob.sticky_presence);
        assert_eq!(bob.presence.base, BaseStatus::Offline);
        case.given(Command::SignIn { agent: BOB });
        assert_eq!(case.agent(BOB).presence.base, BaseStatus::Available);
    }

    #[test]
    fn a_disconnect_is_offline_at_once_and_restored_within_150_seconds() {
        let mut case = sms_case();
        case.given(Command::SetPresence {
            agent: ANN,
            presence: PresenceId::AWAY,
        });
        case.given(Command::Disconnect { agent: ANN });
        assert_eq!(case.agent(ANN).presence.base, BaseStatus::Offline);
        case.advance_secs(149);
        case.given(Command::Reconnect { agent: ANN });
        assert_eq!(case.agent(ANN).presence.base, BaseStatus::Away);
        assert!(case.agent(ANN).sticky_presence);
    }

    #[test]
    fn past_the_grace_work_is_requeued_and_presence_calculated_afresh() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        case.given(Command::SetPresence {
            agent: ANN,
            presence: PresenceId::BUSY,
        });
        case.given(Command::Disconnect { agent: ANN });
        case.advance_secs(150);
        let events = case.given(Command::Tick);
        assert_eq!(
            names(&events),
            [
                "AgentDisconnectGraceExpired",
                "SessionClosed",
                "CapacityReleased",
                "ConversationQueued"
            ]
        );
        let c = case.conversation(conversation(1));
        assert_eq!(c.status, ConversationStatus::Open);
        assert_eq!(
            c.sessions[0].closure,
            Some(ClosureReason::AgentDisconnected)
        );
        case.given(Command::Reconnect { agent: ANN });
        assert_eq!(case.agent(ANN).presence.base, BaseStatus::Available);
        assert_eq!(case.agent(ANN).used_units, 0);
    }

    /// Found by the simulation: a stale automatic Busy-DND came back on a timely reconnect
    /// although the agent's only conversation had ended meanwhile, starving a free agent.
    #[test]
    fn regression_a_timely_reconnect_recalculates_presence_when_capacity_changed_meanwhile() {
        let mut case = Case::standard();
        let mut ws = Workstream::with_defaults(workstream_of(CHAT), "chat", Channel::LiveChat);
        ws.wrap_up_blocking = WrapUpBlocking::Never;
        case.given(Command::ConfigureWorkstream(ws));
        case.given(Command::ProvisionAgent(profile(ANN, 1)));
        case.sign_in(&[ANN]);
        case.active(1, CHAT, ANN);
        assert_eq!(case.agent(ANN).presence.base, BaseStatus::BusyDnd);
        case.given(Command::Disconnect { agent: ANN });
        case.given(Command::CustomerEnd {
            conversation: conversation(1),
        });
        case.advance_secs(50);
        case.given(Command::Reconnect { agent: ANN });
        assert_eq!(case.agent(ANN).presence.base, BaseStatus::Available);
        case.offered(2, CHAT, ANN);
    }

    #[test]
    fn a_disconnected_agent_cannot_work_from_their_desktop() {
        let mut case = sms_case();
        let session = case.active(1, CHAT, ANN);
        case.given(Command::Disconnect { agent: ANN });
        for command in [
            Command::Focus {
                agent: ANN,
                session,
            },
            Command::End {
                agent: ANN,
                conversation: conversation(1),
            },
            Command::Link {
                agent: ANN,
                conversation: Some(conversation(1)),
                record: LinkedRecord {
                    entity: LinkEntity::Account,
                    record: RecordId::from_u128(1),
                },
            },
        ] {
            assert_eq!(case.rejected(command), Rejection::Disconnected(ANN));
        }
    }

    #[test]
    fn an_administrators_away_default_is_used_on_sign_in_and_after_the_grace() {
        let mut case = Case::standard();
        let mut away = profile(ANN, 3);
        away.default_presence = PresenceId::AWAY;
        case.given(Command::ProvisionAgent(away));
        case.sign_in(&[ANN]);
        assert_eq!(case.agent(ANN).presence.base, BaseStatus::Away);
        case.given(Command::SetPresence {
            agent: ANN,
            presence: PresenceId::AVAILABLE,
        });
        case.given(Command::Disconnect { agent: ANN });
        case.advance_secs(200);
        case.given(Command::Reconnect { agent: ANN });
        assert_eq!(case.agent(ANN).presence.base, BaseStatus::Away);
    }

    #[test]
    fn a_custom_presence_routes_like_its_base_status() {
        let mut case = sms_case();
        let lunch = PresenceId(Uuid::from_u128(0x10));
        let training = PresenceId(Uuid::from_u128(0x11));
        for (id, name, base) in [
            (lunch, "Lunch", BaseStatus::Away),
            (training, "Training", BaseStatus::Busy),
        ] {
            case.given(Command::DefineCustomPresence(CustomPresence {
                id,
                name: name.into(),
                base,
            }));
        }
        case.given(Command::SetPresence {
            agent: ANN,
            presence: lunch,
        });
        case.given(Command::SetPresence {
            agent: BOB,
            presence: training,
        });
        assert_eq!(case.agent(BOB).presence.base, BaseStatus::Busy);
        case.offered(1, CHAT, BOB);
        assert!(matches!(
            case.rejected(Command::SetPresence {
                agent: ANN,
                presence: PresenceId(Uuid::from_u128(0x12)),
            }),
            Rejection::UnknownPresence(_)
        ));
    }
}

mod routing {
    use super::*;

    fn start(case: &mut Case, n: u128, queue: QueueId, skills: &[&str]) -> Vec<omni_core::Event> {
        case.given(Command::StartConversation {
            conversation: conversation(n),
            queue,
            skills: skills.iter().map(|s| s.to_string()).collect(),
            customer: "c".into(),
        })
    }

    #[test]
    fn an_arrival_with_a_free_agent_is_offered_at_once() {
        let mut case = Case::standard();
        case.sign_in(&[ANN]);
        let events = start(&mut case, 1, CHAT, &[]);
        assert_eq!(
            names(&events),
            ["ConversationCreated", "IncomingSessionRequest"]
        );
        assert!(matches!(
            events[1].kind,
            EventKind::IncomingSessionRequest {
                agent: ANN,
                origin: omni_core::OfferOrigin::Routing,
                queue: Some(CHAT),
                ..
            }
        ));
        let c = case.conversation(conversation(1));
        assert_eq!(c.status, ConversationStatus::Open);
        assert!(c.pending_offer.is_some());
        assert!(case.world.queues[&CHAT].backlog.is_empty());
        assert_eq!(case.agent(ANN).offered_units, 1);
    }

    #[test]
    fn an_arrival_with_nobody_free_waits_in_the_queue() {
        let mut case = Case::standard();
        case.given(Command::ProvisionAgent(profile(ANN, 1)));
        case.sign_in(&[ANN]);
        case.offered(1, CHAT, ANN);
        let events = start(&mut case, 2, CHAT, &[]);
        assert_eq!(names(&events), ["ConversationCreated"]);
        let c = case.conversation(conversation(2));
        assert_eq!(c.status, ConversationStatus::Open);
        assert_eq!(c.reason, StatusReason::AwaitingAgentAssignment);
        assert!(c.sessions.is_empty());
        assert_eq!(
            case.world.queues[&CHAT]
                .backlog
                .iter()
                .map(|(_, id)| *id)
                .collect::<Vec<_>>(),
            [conversation(2)]
        );
        // When room appears, the router's assignment cycle offers it.
        case.given(Command::CustomerEnd {
            conversation: conversation(1),
        });
        let events = case.given(Command::AssignmentCycle { queue: Some(CHAT) });
        assert!(matches!(
            events[..],
            [omni_core::Event {
                kind: EventKind::IncomingSessionRequest { session, agent: ANN, .. },
                ..
            }] if session.conversation == conversation(2)
        ));
    }

    #[test]
    fn an_arrival_never_overtakes_an_older_conversation() {
        let mut case = Case::standard();
        case.given(Command::ProvisionAgent(profile(ANN, 1)));
        start(&mut case, 1, CHAT, &[]);
        // ANN signs in; the router's cycle has not run yet when the next customer arrives.
        case.sign_in(&[ANN]);
        case.advance_secs(1);
        let events = start(&mut case, 2, CHAT, &[]);
        assert_eq!(
            names(&events),
            ["ConversationCreated", "IncomingSessionRequest"]
        );
        assert!(matches!(
            events[1].kind,
            EventKind::IncomingSessionRequest { session, agent: ANN, .. }
                if session.conversation == conversation(1)
        ));
        assert!(case.conversation(conversation(2)).sessions.is_empty());
    }

    #[test]
    fn offers_go_only_to_members_in_an_allowed_presence_with_capacity_and_skills() {
        let mut case = Case::standard();
        let mut french = profile(CID, 1);
        french.skills.insert("french".into());
        case.given(Command::ProvisionAgent(french));
        case.given(Command::RemoveAgentFromQueue {
            queue: CHAT,
            agent: DEE,
        });
        case.sign_in(&[ANN, BOB, CID, DEE]);
        case.given(Command::SetPresence {
            agent: ANN,
            presence: PresenceId::AWAY,
        });
        start(&mut case, 1, CHAT, &["french"]);
        assert_eq!(
            case.conversation(conversation(1)).sessions[0].agent,
            CID,
            "only CID speaks French"
        );
        assert_eq!(
            names(&start(&mut case, 2, CHAT, &["french"])),
            ["ConversationCreated"]
        );
        assert_eq!(
            case.rejected(Command::Route {
                conversation: conversation(2)
            }),
            Rejection::NoEligibleAgent {
                conversation: conversation(2),
                queue: CHAT
            },
            "CID's one unit is reserved by the offer"
        );
        // The older French conversation still finds nobody; the plain one goes to BOB.
        start(&mut case, 3, CHAT, &[]);
        assert!(case.conversation(conversation(2)).sessions.is_empty());
        assert_eq!(case.conversation(conversation(3)).sessions[0].agent, BOB);
    }

    #[test]
    fn highest_capacity_prefers_the_most_free_units() {
        let mut case = Case::standard();
        case.given(Command::ProvisionAgent(profile(BOB, 5)));
        case.sign_in(&[ANN, BOB]);
        case.offered(1, VOICE, BOB);
    }

    #[test]
    fn advanced_round_robin_goes_to_the_earliest_last_assignment() {
        let mut case = Case::standard();
        case.sign_in(&[ANN, BOB, CID]);
        case.offered(1, CHAT, ANN);
        case.advance_secs(1);
        case.offered(2, CHAT, BOB);
        case.advance_secs(1);
        case.offered(3, CHAT, CID);
        case.advance_secs(1);
        case.offered(4, CHAT, ANN);
    }

    #[test]
    fn least_active_goes_to_the_agent_longest_since_capacity_was_released() {
        let mut case = Case::standard();
        case.sign_in(&[ANN, BOB]);
        case.active(1, SMS, ANN);
        case.active(2, SMS, BOB);
        case.given(Command::CloseSession {
            agent: BOB,
            conversation: conversation(2),
        });
        case.advance_secs(10);
        case.given(Command::CloseSession {
            agent: ANN,
            conversation: conversation(1),
        });
        case.offered(3, SMS, BOB);
    }

    #[test]
    fn an_offer_times_out_after_120_seconds_and_routes_to_someone_else() {
        let mut case = Case::standard();
        case.sign_in(&[ANN, BOB]);
        case.offered(1, CHAT, ANN);
        assert_eq!(next_deadline(&case.world), Some(case.now.plus_secs(120)));
        case.advance_secs(120);
        let events = case.given(Command::Tick);
        assert_eq!(names(&events), ["OfferTimedOut"]);
        let c = case.conversation(conversation(1));
        assert_eq!(c.sessions[0].closure, Some(ClosureReason::AgentTimedOut));
        assert_eq!(c.sessions[0].status, SessionStatus::Canceled);
        case.given(Command::AssignmentCycle { queue: None });
        assert_eq!(case.conversation(conversation(1)).sessions[1].agent, BOB);
    }

    #[test]
    fn a_rejected_offer_routes_to_someone_else_and_back_only_when_nobody_else_can() {
        let mut case = Case::standard();
        case.sign_in(&[ANN, BOB]);
        let first = case.offered(1, CHAT, ANN);
        case.given(Command::Reject {
            agent: ANN,
            session: first,
        });
        let events = case.given(Command::Route {
            conversation: conversation(1),
        });
        assert!(
            matches!(events[0].kind, EventKind::IncomingSessionRequest { agent, .. } if agent == BOB)
        );
        case.given(Command::Reject {
            agent: BOB,
            session: SessionRef {
                conversation: conversation(1),
                number: SessionNo(2),
            },
        });
        case.given(Command::SetPresence {
            agent: BOB,
            presence: PresenceId::AWAY,
        });
        let events = case.given(Command::Route {
            conversation: conversation(1),
        });
        assert!(
            matches!(events[0].kind, EventKind::IncomingSessionRequest { agent, .. } if agent == ANN)
        );
    }

    #[test]
    fn an_assignment_cycle_never_overbooks_an_agent() {
        let mut case = Case::standard();
        case.given(Command::ProvisionAgent(profile(ANN, 2)));
        for n in 1..=5 {
            start(&mut case, n, CHAT, &[]);
        }
        case.sign_in(&[ANN]);
        let events = case.given(Command::AssignmentCycle { queue: None });
        assert_eq!(names(&events), ["IncomingSessionRequest"; 2]);
        assert_eq!(case.agent(ANN).free_units(), 0);
        assert_eq!(case.world.queues[&CHAT].backlog.len(), 3);
    }

    #[test]
    fn pick_mode_queues_are_picked_by_agents_not_pushed() {
        let mut case = Case::standard();
        let mut ws = Workstream::with_defaults(workstream_of(SMS), "sms", Channel::Sms);
        ws.mode = RoutingMode::Pick;
        case.given(Command::ConfigureWorkstream(ws));
        case.sign_in(&[ANN]);
        start(&mut case, 1, SMS, &[]);
        assert_eq!(
            case.rejected(Command::Route {
                conversation: conversation(1)
            }),
            Rejection::PickModeQueue { queue: SMS }
        );
        assert!(
            case.given(Command::AssignmentCycle { queue: None })
                .is_empty()
        );
        case.given(Command::Pick {
            agent: ANN,
            conversation: conversation(1),
        });
        assert_eq!(case.conversation(conversation(1)).primary, Some(ANN));
    }

    #[test]
    fn a_supervisor_assigns_past_presence_rules_but_never_past_capacity() {
        let mut case = Case::standard();
        case.given(Command::ProvisionAgent(profile(CID, 1)));
        case.sign_in(&[ANN, CID]);
        case.given(Command::SetPresence {
            agent: CID,
            presence: PresenceId::AWAY,
        });
        case.offered(1, CHAT, ANN);
        let supervisor = SupervisorId::from_u128(1);
        let events = case.given(Command::SupervisorAssign {
            supervisor,
            conversation: conversation(1),
            agent: CID,
        });
        assert_eq!(names(&events), ["OfferWithdrawn", "IncomingSessionRequest"]);
        start(&mut case, 2, CHAT, &[]);
        assert!(matches!(
            case.rejected(Command::SupervisorAssign {
                supervisor,
                conversation: conversation(2),
                agent: CID,
            }),
            Rejection::NoCapacity { .. }
        ));
    }

    #[test]
    fn queue_configuration_must_name_an_existing_workstream() {
        let case = Case::standard();
        let ws = omni_core::WorkstreamId::from_u128(0xDEAD);
        assert_eq!(
            case.rejected(Command::ConfigureQueue(QueueConfig {
                id: QueueId::from_u128(0xF0),
                name: "x".into(),
                workstream: ws,
                method: AssignmentMethod::LeastActive,
            })),
            Rejection::UnknownWorkstream(ws)
        );
    }
}

mod links {
    use super::*;

    fn record(entity: LinkEntity, n: u128) -> LinkedRecord {
        LinkedRecord {
            entity,
            record: RecordId::from_u128(n),
        }
    }

    #[test]
    fn only_account_contact_and_incident_can_be_linked() {
        assert_eq!(
            LinkEntity::from_logical_name("incident"),
            Some(LinkEntity::Incident)
        );
        assert_eq!(LinkEntity::from_logical_name("opportunity"), None);
    }

    #[test]
    fn only_active_conversations_can_be_linked() {
        let mut case = sms_case();
        case.offered(1, CHAT, ANN);
        assert!(matches!(
            case.rejected(Command::Link {
                agent: ANN,
                conversation: Some(conversation(1)),
                record: record(LinkEntity::Account, 1),
            }),
            Rejection::NotPrimary { .. }
        ));
        case.active(2, SMS, BOB);
        case.given(Command::End {
            agent: BOB,
            conversation: conversation(2),
        });
        assert!(matches!(
            case.rejected(Command::Link {
                agent: BOB,
                conversation: Some(conversation(2)),
                record: record(LinkEntity::Account, 1),
            }),
            Rejection::WrongStatus { .. }
        ));
    }

    #[test]
    fn one_customer_and_one_case_and_a_new_link_replaces_the_old() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        let link = |case: &mut Case, r| {
            case.given(Command::Link {
                agent: ANN,
                conversation: Some(conversation(1)),
                record: r,
            })
        };
        link(&mut case, record(LinkEntity::Account, 1));
        link(&mut case, record(LinkEntity::Incident, 2));
        let events = link(&mut case, record(LinkEntity::Contact, 3));
        assert!(matches!(
            &events[0].kind,
            EventKind::RecordLinked { replaced: Some(old), .. } if *old == record(LinkEntity::Account, 1)
        ));
        let c = case.conversation(conversation(1));
        assert_eq!(c.customer_link, Some(record(LinkEntity::Contact, 3)));
        assert_eq!(c.case_link, Some(record(LinkEntity::Incident, 2)));
        assert!(link(&mut case, record(LinkEntity::Contact, 3)).is_empty());
    }

    #[test]
    fn unlink_removes_one_link_and_refuses_what_is_not_linked() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        case.given(Command::Link {
            agent: ANN,
            conversation: Some(conversation(1)),
            record: record(LinkEntity::Incident, 2),
        });
        assert_eq!(
            case.rejected(Command::Unlink {
                agent: ANN,
                conversation: Some(conversation(1)),
                entity: LinkEntity::Incident,
                record: RecordId::from_u128(3),
            }),
            Rejection::NotLinked {
                conversation: conversation(1),
                entity: "incident",
                record: RecordId::from_u128(3)
            }
        );
        case.given(Command::Unlink {
            agent: ANN,
            conversation: Some(conversation(1)),
            entity: LinkEntity::Incident,
            record: RecordId::from_u128(2),
        });
        assert_eq!(case.conversation(conversation(1)).case_link, None);
    }

    #[test]
    fn without_a_conversation_id_the_focused_conversation_is_linked() {
        let mut case = sms_case();
        let session = case.active(1, CHAT, ANN);
        assert_eq!(
            case.rejected(Command::Link {
                agent: ANN,
                conversation: None,
                record: record(LinkEntity::Account, 1),
            }),
            Rejection::NoFocusedConversation { agent: ANN }
        );
        case.given(Command::Focus {
            agent: ANN,
            session,
        });
        case.given(Command::Link {
            agent: ANN,
            conversation: None,
            record: record(LinkEntity::Account, 1),
        });
        assert_eq!(
            case.conversation(conversation(1)).customer_link,
            Some(record(LinkEntity::Account, 1))
        );
    }
}

/// What a service holding one world for months relies on: timers and case links found through
/// the world's indexes, and closed conversations forgotten.
mod indexes_and_forgetting {
    use super::*;
    use omni_core::{ChannelTimers, next_deadline_by_scan, on_tick, on_tick_by_scan};

    fn chat_with_timers(open_secs: u64, wrap_up_secs: u64) -> Workstream {
        let mut ws = Workstream::with_defaults(workstream_of(CHAT), "chat", Channel::LiveChat);
        ws.timers = ChannelTimers {
            open_secs: Some(open_secs),
            wrap_up_secs: Some(wrap_up_secs),
            ..ws.timers
        };
        ws
    }

    #[test]
    fn reconfiguring_a_workstream_moves_the_deadlines_of_its_live_conversations() {
        let mut case = Case::standard();
        let created = case.now;
        case.start(1, CHAT);
        case.start(2, SMS);
        assert_eq!(next_deadline(&case.world), Some(created.plus_secs(20 * 60)));

        // The chat open timer drops from 20 to 5 minutes, two minutes after the start: the
        // conversation's deadline follows at once, counted from when it became Open.
        case.advance_secs(120);
        case.given(Command::ConfigureWorkstream(chat_with_timers(
            5 * 60,
            15 * 60,
        )));
        assert_eq!(next_deadline(&case.world), Some(created.plus_secs(5 * 60)));
        assert_eq!(
            next_deadline(&case.world),
            next_deadline_by_scan(&case.world)
        );

        case.advance_secs(3 * 60 - 1);
        assert!(on_tick(&case.world, case.now).is_empty());
        case.advance_secs(1);
        let events = case.given(Command::Tick);
        assert!(matches!(
            &events[..],
            [e] if e.kind == EventKind::ConversationClosed {
                conversation: conversation(1),
                reason: StatusReason::AutoClosedBySystem,
            }
        ));
        // The SMS conversation of another workstream kept its 30 days.
        assert_eq!(
            next_deadline(&case.world),
            Some(created.plus_secs(30 * 86_400))
        );

        // Lengthening a timer moves a deadline later just as well, and removing it removes it.
        let start = case.now;
        case.start(3, CHAT);
        case.given(Command::ConfigureWorkstream(chat_with_timers(
            3600,
            15 * 60,
        )));
        assert_eq!(next_deadline(&case.world), Some(start.plus_secs(3600)));
        let mut untimed = chat_with_timers(3600, 15 * 60);
        untimed.timers.open_secs = None;
        case.given(Command::ConfigureWorkstream(untimed));
        assert_eq!(
            next_deadline(&case.world),
            Some(created.plus_secs(30 * 86_400))
        );
        assert_eq!(
            on_tick(&case.world, start.plus_secs(3600)),
            on_tick_by_scan(&case.world, start.plus_secs(3600))
        );
    }

    #[test]
    fn reconfiguring_wrap_up_blocking_times_the_release_of_capacity_already_held() {
        let mut case = sms_case();
        case.active(1, CHAT, ANN);
        case.given(Command::End {
            agent: ANN,
            conversation: conversation(1),
        });
        let ended = case.now;
        assert_eq!(next_deadline(&case.world), Some(ended.plus_secs(15 * 60)));
        case.advance_secs(10);
        let mut ws = Workstream::with_defaults(workstream_of(CHAT), "chat", Channel::LiveChat);
        ws.wrap_up_blocking = WrapUpBlocking::ForSeconds(60);
        case.given(Command::ConfigureWorkstream(ws));
        assert_eq!(next_deadline(&case.world), Some(ended.plus_secs(60)));
        case.advance_secs(50);
        let events = case.given(Command::Tick);
        assert_eq!(names(&events), ["CapacityReleased", "PresenceUpdate"]);
        assert_eq!(next_deadline(&case.world), Some(ended.plus_secs(15 * 60)));
    }

    fn link_case(case: &mut Case, agent: AgentId, n: u128, record: u128) {
        case.given(Command::Link {
            agent,
            conversation: Some(conversation(n)),
            record: LinkedRecord {
                entity: LinkEntity::Incident,
                record: RecordId::from_u128(record),
            },
        });
    }

    #[test]
    fn resolving_a_case_closes_exactly_the_live_conversations_linked_to_it() {
        let mut case = sms_case();
        case.active(1, SMS, ANN);
        case.active(2, CHAT, BOB);
        case.active(3, SMS, BOB);
        case.active(4, CHAT, ANN);
        link_case(&mut case, ANN, 1, 77);
        link_case(&mut case, BOB, 2, 77);
        link_case(&mut case, BOB, 3, 78);
        // Conversation 4 was linked to the case, then to another one: only the last counts.
        link_case(&mut case, ANN, 4, 77);
        link_case(&mut case, ANN, 4, 79);
        // Conversation 2 waits in wrap-up: still live, still linked.
        case.given(Command::End {
            agent: BOB,
            conversation: conversation(2),
        });

        let events = case.given(Command::ResolveCase {
            record: RecordId::from_u128(77),
        });
        let closed: Vec<_> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::ConversationClosed {
                    conversation,
                    reason: StatusReason::LinkedCaseResolved,
                } => Some(*conversation),
                _ => None,
            })
            .collect();
        assert_eq!(closed, [conversation(1), conversation(2)]);
        for n in [3, 4] {
            assert_eq!(
                case.conversation(conversation(n)).status,
                ConversationStatus::Active
            );
        }
        // Nothing live is linked to the resolved case any more; an unlinked case closes
        // nothing.
        assert!(
            case.when(Command::ResolveCase {
                record: RecordId::from_u128(77)
            })
            .unwrap()
            .is_empty()
        );
        case.given(Command::Unlink {
            agent: BOB,
            conversation: Some(conversation(3)),
            entity: LinkEntity::Incident,
            record: RecordId::from_u128(78),
        });
        assert!(
            case.when(Command::ResolveCase {
                record: RecordId::from_u128(78)
            })
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn a_forgotten_conversation_leaves_no_trace_and_is_unknown_from_then_on() {
        let mut case = sms_case();
        let session = case.active(1, CHAT, ANN);
        case.given(Command::Focus {
            agent: ANN,
            session,
        });
        link_case(&mut case, ANN, 1, 77);
        case.active(2, CHAT, ANN);
        let id = conversation(1);
        assert!(
            case.world.forget(id).is_none(),
            "a live conversation is kept"
        );

        case.given(Command::ForceClose {
            supervisor: SupervisorId::from_u128(9),
            conversation: id,
        });
        let before = case.world.clone();
        let forgotten = case
            .world
            .forget(id)
            .expect("closed conversations can be forgotten");
        assert_eq!(forgotten.status, ConversationStatus::Closed);
        assert!(!case.world.conversations.contains_key(&id));
        let ann = case.agent(ANN);
        assert!(!ann.tabs.contains(&id));
        assert!(ann.open_sessions.iter().all(|s| s.conversation != id));
        assert!(ann.focused.is_none_or(|s| s.conversation != id));
        // Nothing else moved: the rest of the world is what it was, indexes included.
        let mut expected = before;
        expected.conversations.remove(&id);
        expected.rebuild_indexes();
        assert_eq!(case.world, expected);

        assert_eq!(
            case.rejected(Command::CustomerMessage { conversation: id }),
            Rejection::UnknownConversation(id)
        );
        assert!(case.world.forget(id).is_none());
        assert!(
            case.when(Command::ResolveCase {
                record: RecordId::from_u128(77)
            })
            .unwrap()
            .is_empty()
        );
        case.given(Command::End {
            agent: ANN,
            conversation: conversation(2),
        });
    }
}
