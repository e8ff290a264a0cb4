//! The HTTP gateway end to end: a real engine (its nats-server, its sled log) with the gateway
//! on a free port, called over real HTTP. Every endpoint is called well formed and badly formed;
//! rule rejections come back 409 with the core's code and reason, unknown ids 404, bad input 400
//! naming the field, and every answer — errors too — is JSON.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, StatusCode};
use omni_core::{
    Actor, AgentId, Command, EventKind, PresenceId, QueueConfig, QueueId, RoutingMode, Workstream,
    WorkstreamId,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::live::{Desktop, Live, block_on};
use crate::support::{
    ANN, BOB, CHAT, CID, DEE, EMPTY, HttpClient, SMS, VOICE, exchange, http_client, profile,
};

const TOKEN: &str = "gateway-test-token";

/// A live engine with its gateway, and an HTTP client for it.
struct Api {
    live: Live,
    http: Http,
}

async fn start(name: &str) -> Api {
    let live = Live::standard_with(name, |config| {
        config.http_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.api_tokens = vec![TOKEN.to_owned()];
    })
    .await;
    let addr = live.engine.http_addr.expect("the gateway is served");
    Api {
        live,
        http: Http::new(addr),
    }
}

struct Http {
    client: HttpClient,
    base: String,
}

/// An answer: its status, headers and JSON body.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

impl Answer {
    /// The body of a successful answer.
    #[track_caller]
    fn ok(self) -> Value {
        assert!(
            self.status.is_success(),
            "expected success, got {} {}",
            self.status,
            self.json
        );
        self.json
    }

    /// Asserts the error shape: status, code, and the field named (or none).
    #[track_caller]
    fn error(&self, status: u16, code: &str, field: Option<&str>) -> &Answer {
        assert_eq!(self.status.as_u16(), status, "{}", self.json);
        assert_eq!(self.json["status"], status, "{}", self.json);
        assert_eq!(self.json["code"], code, "{}", self.json);
        assert_eq!(self.json["field"].as_str(), field, "{}", self.json);
        assert!(
            self.json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.json
        );
        self
    }

    /// The engine's reason must say something about `words`.
    #[track_caller]
    fn mentions(&self, words: &str) -> &Answer {
        let message = self.json["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(words),
            "'{message}' does not mention '{words}'"
        );
        self
    }
}

impl Http {
    fn new(addr: SocketAddr) -> Http {
        Http {
            client: http_client(),
            base: format!("http://{addr}"),
        }
    }

    /// Sends a request as given; every answer must be JSON.
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .expect("a request");
        let (status, headers, bytes) = exchange(&self.client, request).await;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "{status} answered as '{content_type}': {}",
            String::from_utf8_lossy(&bytes)
        );
        let json = serde_json::from_slice(&bytes).expect("a JSON body");
        Answer {
            status,
            headers,
            json,
        }
    }

    async fn authorized(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let auth = format!("Bearer {TOKEN}");
        let (headers, bytes) = match body {
            Some(body) => (
                vec![
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ],
                body.to_string().into_bytes(),
            ),
            None => (vec![("authorization", auth.as_str())], Vec::new()),
        };
        self.send(method, path, &headers, bytes).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.authorized(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.authorized(Method::POST, path, Some(body)).await
    }

    /// A POST with an `Idempotency-Key`.
    async fn post_keyed(&self, path: &str, key: &str, body: Value) -> Answer {
        let auth = format!("Bearer {TOKEN}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
            ("idempotency-key", key),
        ];
        self.send(Method::POST, path, &headers, body.to_string().into_bytes())
            .await
    }

    /// A POST without a body.
    async fn call(&self, path: &str) -> Answer {
        self.authorized(Method::POST, path, None).await
    }

    async fn put(&self, path: &str, body: Value) -> Answer {
        self.authorized(Method::PUT, path, Some(body)).await
    }

    /// A POST with raw bytes and headers of the test's choosing, plus the token.
    async fn post_raw(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let auth = format!("Bearer {TOKEN}");
        let mut all = vec![("authorization", auth.as_str())];
        all.extend_from_slice(headers);
        self.send(Method::POST, path, &all, body.to_vec()).await
    }
}

fn id(agent: AgentId) -> String {
    agent.0.to_string()
}

fn conversation_path(conversation: &str, action: &str) -> String {
    format!("/v1/conversations/{conversation}/{action}")
}

/// The next offer on a desktop: its conversation and session number.
async fn next_offer(desktop: &mut Desktop) -> (String, u32) {
    let envelope = desktop
        .next("incoming_session_request", Duration::from_secs(10))
        .await;
    match envelope.event.kind {
        EventKind::IncomingSessionRequest { session, .. } => {
            (session.conversation.0.to_string(), session.number.0)
        }
        other => panic!("an offer notification carried {other:?}"),
    }
}

impl Api {
    /// A customer arrives in `queue` through the gateway; returns the conversation id.
    async fn arrive(&self, queue: QueueId) -> String {
        let answer = self
            .http
            .post(
                "/v1/conversations",
                json!({"queue_id": queue.0.to_string(), "customer": "Ada"}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
        answer.json["conversation_id"]
            .as_str()
            .expect("the started conversation's id")
            .to_owned()
    }

    /// Signs `agent` in through the gateway.
    async fn sign_in(&self, agent: AgentId) {
        self.http
            .call(&format!("/v1/agents/{}/sign-in", id(agent)))
            .await
            .ok();
    }

    /// A conversation in `queue` offered to `agent` (the only one signed in there) and
    /// accepted through the gateway; returns its id.
    async fn active(&self, queue: QueueId, agent: AgentId, desktop: &mut Desktop) -> String {
        let conversation = self.arrive(queue).await;
        let (offered, session) = next_offer(desktop).await;
        assert_eq!(offered, conversation);
        self.http
            .post(
                &conversation_path(&conversation, "accept"),
                json!({"agent_id": id(agent), "session_number": session}),
            )
            .await
            .ok();
        conversation
    }

    /// The conversation as the read model has it once it folded `position`.
    async fn conversation(&self, conversation: &str, position: &Value) -> Value {
        self.http
            .get(&format!(
                "/v1/conversations/{conversation}?min_position={position}"
            ))
            .await
            .ok()
    }
}

#[test]
fn gateway_takes_a_chat_from_arrival_to_close() {
    block_on(async {
        let api = start("gateway-chat").await;
        let http = &api.http;
        let mut ann = api.live.desktop(ANN).await;
        let mut bob = api.live.desktop(BOB).await;

        // Sign in: happy, twice (a rule), unknown agent, malformed id.
        api.sign_in(ANN).await;
        http.call(&format!("/v1/agents/{}/sign-in", id(ANN)))
            .await
            .error(409, "ALREADY_SIGNED_IN", None);
        http.call(&format!("/v1/agents/{}/sign-in", Uuid::now_v7()))
            .await
            .error(404, "UNKNOWN_AGENT", None);
        http.call("/v1/agents/not-a-uuid/sign-in").await.error(
            400,
            "INVALID_FIELD",
            Some("agent_id"),
        );

        // Start: bad input of every kind, then the customer arrives.
        let start = "/v1/conversations";
        http.post(start, json!({"customer": "Ada"})).await.error(
            400,
            "INVALID_FIELD",
            Some("queue_id"),
        );
        http.post(start, json!({"queue_id": "x", "customer": "Ada"}))
            .await
            .error(400, "INVALID_FIELD", Some("queue_id"))
            .mentions("not a UUID");
        http.post(
            start,
            json!({"queue_id": CHAT.0.to_string(), "customer": 7}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("customer"));
        http.post(
            start,
            json!({"queue_id": CHAT.0.to_string(), "customer": "Ada", "colour": "red"}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("colour"));
        http.post_raw(
            start,
            &[("content-type", "application/json")],
            b"{\"queue_id\": ",
        )
        .await
        .error(400, "INVALID_JSON", Some("body"));
        http.post_raw(start, &[("content-type", "text/plain")], b"{}")
            .await
            .error(415, "UNSUPPORTED_MEDIA_TYPE", Some("Content-Type"));
        http.post(
            start,
            json!({"queue_id": Uuid::now_v7().to_string(), "customer": "Ada"}),
        )
        .await
        .error(404, "UNKNOWN_QUEUE", None);
        let key = Uuid::now_v7().to_string();
        let started = http
            .post_keyed(
                start,
                &key,
                json!({"queue_id": CHAT.0.to_string(), "customer": "Ada", "skills": []}),
            )
            .await;
        assert_eq!(started.status, StatusCode::CREATED);
        let chat = started.json["conversation_id"].as_str().unwrap().to_owned();
        assert_eq!(
            chat, key,
            "without conversation_id, the Idempotency-Key names it"
        );
        assert_eq!(started.json["events"][0]["kind"], "ConversationCreated");
        http.post(
            start,
            json!({"conversation_id": chat, "queue_id": CHAT.0.to_string(), "customer": "Ada"}),
        )
        .await
        .error(409, "CONVERSATION_EXISTS", None);

        // Accept: bad session numbers, the offer accepted, a retry replayed.
        let (offered, session) = next_offer(&mut ann).await;
        assert_eq!(offered, chat);
        let accept = conversation_path(&chat, "accept");
        http.post(&accept, json!({"agent_id": id(ANN), "session_number": 0}))
            .await
            .error(400, "INVALID_FIELD", Some("session_number"));
        http.post(
            &accept,
            json!({"agent_id": id(ANN), "session_number": "one"}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("session_number"));
        http.post(&accept, json!({"agent_id": id(ANN)}))
            .await
            .error(400, "INVALID_FIELD", Some("session_number"));
        http.post(
            &conversation_path(&Uuid::now_v7().to_string(), "accept"),
            json!({"agent_id": id(ANN), "session_number": session}),
        )
        .await
        .error(404, "UNKNOWN_CONVERSATION", None);
        let key = Uuid::now_v7().to_string();
        let body = json!({"agent_id": id(ANN), "session_number": session});
        let accept_once = || http.post_keyed(&accept, &key, body.clone());
        let accepted = accept_once().await.ok();
        assert_eq!(accepted["replayed"], false);
        assert_eq!(accepted["events"][0]["kind"], "SessionAccepted");
        let again = accept_once().await.ok();
        assert_eq!(
            again["replayed"], true,
            "the same Idempotency-Key is a retry"
        );
        assert_eq!(again["events"], accepted["events"]);
        http.send(
            Method::POST,
            &accept,
            &[
                ("authorization", &format!("Bearer {TOKEN}")),
                ("idempotency-key", "yesterday"),
            ],
            Vec::new(),
        )
        .await
        .error(400, "INVALID_FIELD", Some("Idempotency-Key"));

        // Bob signs in now that the chat is Ann's: nothing more for the router to offer.
        api.sign_in(BOB).await;

        // Read your writes.
        let view = api.conversation(&chat, &accepted["position"]).await;
        assert_eq!(view["status"], "active");
        assert_eq!(view["status_code"], 2);
        assert_eq!(view["channel"], "live_chat");
        assert_eq!(view["primary_agent_id"], id(ANN));
        http.get(&format!("/v1/conversations/{}", Uuid::now_v7()))
            .await
            .error(404, "NOT_FOUND", None);
        http.get("/v1/conversations/42")
            .await
            .error(400, "INVALID_FIELD", Some("conversation_id"));
        http.get(&format!("/v1/conversations/{chat}?min_position=soon"))
            .await
            .error(400, "INVALID_FIELD", Some("min_position"));

        // Reject: the accepted session is no longer an open offer.
        let reject = conversation_path(&chat, "reject");
        http.post(
            &reject,
            json!({"agent_id": id(ANN), "session_number": session}),
        )
        .await
        .error(409, "NOT_AN_OPEN_OFFER", None);
        http.post(
            &reject,
            json!({"agent_id": "ann", "session_number": session}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("agent_id"));

        // Focus.
        let focus = conversation_path(&chat, "focus");
        http.post(
            &focus,
            json!({"agent_id": id(ANN), "session_number": session}),
        )
        .await
        .ok();
        http.post(
            &focus,
            json!({"agent_id": id(BOB), "session_number": session}),
        )
        .await
        .error(409, "NOT_OWN_SESSION", None);

        // Links: REST and the JavaScript API's names, with DOMAIN.md's rules.
        let record = Uuid::now_v7().to_string();
        let link = conversation_path(&chat, "link");
        http.post(
            &link,
            json!({"agent_id": id(ANN), "entity_logical_name": "lead", "record_id": record}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("entity_logical_name"))
        .mentions("account, contact, incident");
        let linked = http
            .post(
                &link,
                json!({"agent_id": id(ANN), "entity_logical_name": "incident", "record_id": record}),
            )
            .await
            .ok();
        assert_eq!(linked["events"][0]["kind"], "RecordLinked");
        let account = Uuid::now_v7().to_string();
        let seed_linked = http
            .post(
                "/v1/linkToConversation",
                json!({"agentId": id(ANN), "entityLogicalName": "account", "recordId": account}),
            )
            .await
            .ok();
        let view = api.conversation(&chat, &seed_linked["position"]).await;
        assert_eq!(view["case_link"]["record_id"], record);
        assert_eq!(view["customer_link"]["entity_logical_name"], "account");
        assert_eq!(
            view["customer_link"]["record_id"], account,
            "without conversationId the focused conversation is linked"
        );
        http.post(
            "/v1/linkToConversation",
            json!({"agentId": id(BOB), "entityLogicalName": "contact", "recordId": account}),
        )
        .await
        .error(409, "NO_FOCUSED_CONVERSATION", None);
        http.post(
            "/v1/linkToConversation",
            json!({"agentId": id(ANN), "entityLogicalName": "contact"}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("recordId"));
        http.post(
            "/v1/unlinkFromConversation",
            json!({"agentId": id(ANN), "entityLogicalName": "account", "recordId": account, "conversationId": chat}),
        )
        .await
        .ok();
        http.post(
            "/v1/unlinkFromConversation",
            json!({"agentId": id(ANN), "entityLogicalName": "account", "recordId": account, "conversationId": "c"}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("conversationId"));
        let unlink = conversation_path(&chat, "unlink");
        http.post(
            &unlink,
            json!({"agent_id": id(ANN), "entity_logical_name": "incident", "record_id": record}),
        )
        .await
        .ok();
        http.post(
            &unlink,
            json!({"agent_id": id(ANN), "entity_logical_name": "incident", "record_id": record}),
        )
        .await
        .error(409, "NOT_LINKED", None);

        // Hold is for calls.
        http.post(
            &conversation_path(&chat, "hold"),
            json!({"agent_id": id(ANN)}),
        )
        .await
        .error(409, "CHANNEL_DOES_NOT_SUPPORT", None);

        // Consult with Bob, then transfer to him.
        let consult_start = conversation_path(&chat, "consult/start");
        http.post(
            &consult_start,
            json!({"agent_id": id(ANN), "consultant_id": id(ANN)}),
        )
        .await
        .error(409, "SELF_TARGET", None);
        http.post(&consult_start, json!({"agent_id": id(ANN)}))
            .await
            .error(400, "INVALID_FIELD", Some("consultant_id"));
        http.post(
            &consult_start,
            json!({"agent_id": id(ANN), "consultant_id": id(BOB)}),
        )
        .await
        .ok();
        let consult_end = conversation_path(&chat, "consult/end");
        http.post(
            &consult_end,
            json!({"agent_id": id(ANN), "consultant_id": id(BOB)}),
        )
        .await
        .ok();
        http.post(
            &consult_end,
            json!({"agent_id": id(ANN), "consultant_id": id(BOB)}),
        )
        .await
        .error(409, "NOT_CONSULTANT", None);
        let transfer = conversation_path(&chat, "transfer");
        http.post(
            &transfer,
            json!({"agent_id": id(ANN), "target_agent_id": id(BOB), "target_queue_id": CHAT.0.to_string()}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("target_agent_id"));
        http.post(
            &transfer,
            json!({"agent_id": id(BOB), "target_agent_id": id(ANN)}),
        )
        .await
        .error(409, "NOT_PRIMARY", None);
        http.post(
            &transfer,
            json!({"agent_id": id(ANN), "target_agent_id": id(BOB)}),
        )
        .await
        .ok();
        let (offered, session) = next_offer(&mut bob).await;
        assert_eq!(offered, chat);
        http.post(
            &accept,
            json!({"agent_id": id(BOB), "session_number": session}),
        )
        .await
        .ok();

        // End and wrap up.
        let end = conversation_path(&chat, "end");
        http.post(&end, json!({"agent_id": id(ANN)}))
            .await
            .error(409, "NOT_PRIMARY", None)
            .mentions(&ANN.0.to_string());
        http.post(&end, json!({}))
            .await
            .error(400, "INVALID_FIELD", Some("agent_id"));
        http.post(&end, json!({"agent_id": id(BOB)})).await.ok();
        let complete = conversation_path(&chat, "complete-wrap-up");
        http.post(&complete, json!({"agent_id": id(ANN)}))
            .await
            .error(409, "NOT_PRIMARY", None);
        let closed = http
            .post(&complete, json!({"agent_id": id(BOB)}))
            .await
            .ok();
        let view = api.conversation(&chat, &closed["position"]).await;
        assert_eq!(view["status"], "closed");
        assert_eq!(view["transfer_count"], 1);

        // Listed among the closed ones; filters are checked.
        let page = http
            .get(&format!(
                "/v1/conversations?status=closed&queue={}&channel=live_chat",
                CHAT.0
            ))
            .await
            .ok();
        assert_eq!(page["conversations"][0]["conversation_id"], chat);
        assert_eq!(page["next_page_token"], Value::Null);
        http.get("/v1/conversations?status=finished")
            .await
            .error(400, "INVALID_FIELD", Some("status"))
            .mentions("wrap_up");
        http.get("/v1/conversations?channel=pigeon").await.error(
            400,
            "INVALID_FIELD",
            Some("channel"),
        );
        http.get("/v1/conversations?agent=bob")
            .await
            .error(400, "INVALID_FIELD", Some("agent"));
        http.get("/v1/conversations?colour=red")
            .await
            .error(400, "INVALID_FIELD", Some("colour"));
        http.get("/v1/conversations?status=open&status=closed")
            .await
            .error(400, "INVALID_FIELD", Some("status"));

        api.live.stop().await;
    });
}

#[test]
fn gateway_serves_calls_customers_supervisors_and_waiting() {
    block_on(async {
        let api = start("gateway-calls").await;
        let http = &api.http;
        let supervisor = Uuid::now_v7().to_string();
        // Cid, signed in but Away, is offered nothing by the router: only a supervisor.
        api.sign_in(CID).await;
        http.put(
            &format!("/v1/agents/{}/presence", id(CID)),
            json!({"presence_id": PresenceId::AWAY.0.to_string()}),
        )
        .await
        .ok();

        // A call assigned by a supervisor, accepted, held, recorded.
        let call = api.arrive(VOICE).await;
        let assign = conversation_path(&call, "assign");
        http.post(&assign, json!({"agent_id": id(CID)}))
            .await
            .error(400, "INVALID_FIELD", Some("supervisor_id"));
        http.post(
            &assign,
            json!({"supervisor_id": supervisor, "agent_id": id(DEE)}),
        )
        .await
        .error(409, "NOT_SIGNED_IN", None);
        let assigned = http
            .post(
                &assign,
                json!({"supervisor_id": supervisor, "agent_id": id(CID)}),
            )
            .await
            .ok();
        http.post(
            &assign,
            json!({"supervisor_id": supervisor, "agent_id": id(CID)}),
        )
        .await
        .error(409, "ALREADY_OFFERED", None);
        let view = api.conversation(&call, &assigned["position"]).await;
        let session = view["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["agent_id"] == id(CID) && s["status"] == "open")
            .expect("an open offer to Cid")["session_number"]
            .clone();
        http.post(
            &conversation_path(&call, "accept"),
            json!({"agent_id": id(CID), "session_number": session}),
        )
        .await
        .ok();
        // Dee signs in with nothing left to route: she has no say over Cid's call.
        api.sign_in(DEE).await;
        let hold = conversation_path(&call, "hold");
        let unhold = conversation_path(&call, "unhold");
        http.post(&unhold, json!({"agent_id": id(CID)}))
            .await
            .error(409, "CALL_STATE", None);
        http.post(&hold, json!({"agent_id": id(CID)})).await.ok();
        http.post(&hold, json!({"agent_id": 5})).await.error(
            400,
            "INVALID_FIELD",
            Some("agent_id"),
        );
        let resumed = http.post(&unhold, json!({"agent_id": id(CID)})).await.ok();
        assert_eq!(resumed["events"][0]["kind"], "CallResumed");
        let recording = |action: &str| conversation_path(&call, &format!("recording/{action}"));
        let transcription =
            |action: &str| conversation_path(&call, &format!("transcription/{action}"));
        http.post(&recording("pause"), json!({"agent_id": id(CID)}))
            .await
            .error(409, "MEDIA_TRANSITION", None);
        http.post(&recording("start"), json!({"agent_id": id(CID)}))
            .await
            .ok();
        http.post(&recording("pause"), json!({"agent_id": id(CID)}))
            .await
            .ok();
        http.post(&recording("rewind"), json!({"agent_id": id(CID)}))
            .await
            .error(400, "INVALID_FIELD", Some("action"));
        http.post(
            &transcription("start"),
            json!({"supervisor_id": supervisor}),
        )
        .await
        .ok();
        http.post(&transcription("stop"), json!({"agent_id": id(DEE)}))
            .await
            .error(409, "NOT_PRIMARY", None);
        http.post(
            &transcription("stop"),
            json!({"agent_id": id(CID), "supervisor_id": supervisor}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("agent_id"));

        // A supervisor closes it.
        let force_close = conversation_path(&call, "force-close");
        http.post(&force_close, json!({"supervisor_id": "boss"}))
            .await
            .error(400, "INVALID_FIELD", Some("supervisor_id"));
        http.post(&force_close, json!({"supervisor_id": supervisor}))
            .await
            .ok();
        http.post(&force_close, json!({"supervisor_id": supervisor}))
            .await
            .error(409, "CONVERSATION_CLOSED", None);
        http.call(&format!("/v1/agents/{}/sign-out", id(CID)))
            .await
            .ok();

        // The customer's side of a chat: messages, a dropped connection and the return.
        let mut dee = api.live.desktop(DEE).await;
        let chat = api.active(CHAT, DEE, &mut dee).await;
        let customer = |action: &str| conversation_path(&chat, &format!("customer/{action}"));
        http.call(&customer("message")).await.ok();
        http.call(&customer("reconnect"))
            .await
            .error(409, "CUSTOMER_CONNECTION", None);
        http.call(&customer("disconnect")).await.ok();
        http.call(&customer("disconnect"))
            .await
            .error(409, "CUSTOMER_CONNECTION", None);
        http.call(&customer("reconnect")).await.ok();
        http.post(&customer("message"), json!({"text": "hello"}))
            .await
            .error(400, "INVALID_FIELD", Some("text"));
        http.call(&customer("end")).await.ok();
        http.call(&conversation_path(
            &Uuid::now_v7().to_string(),
            "customer/end",
        ))
        .await
        .error(404, "UNKNOWN_CONVERSATION", None);

        // A persistent channel waits: close the session, resume it.
        let sms = api.active(SMS, DEE, &mut dee).await;
        let close_session = conversation_path(&sms, "close-session");
        let resume = conversation_path(&sms, "resume");
        http.post(&resume, json!({"agent_id": id(DEE)}))
            .await
            .error(409, "WRONG_STATUS", None);
        let waiting = http
            .post(&close_session, json!({"agent_id": id(DEE)}))
            .await
            .ok();
        assert_eq!(
            api.conversation(&sms, &waiting["position"]).await["status"],
            "waiting"
        );
        http.post(&close_session, json!({"agent_id": id(DEE)}))
            .await
            .error(409, "NOT_PRIMARY", None);
        http.post(&resume, json!({"agent_id": id(CID)}))
            .await
            .error(409, "NOT_SIGNED_IN", None)
            .mentions(&CID.0.to_string());
        http.post(&resume, json!({"agent_id": id(DEE)})).await.ok();

        // A resolved case closes what is linked to it.
        let case = Uuid::now_v7().to_string();
        http.post(
            &conversation_path(&sms, "link"),
            json!({"agent_id": id(DEE), "entity_logical_name": "incident", "record_id": case}),
        )
        .await
        .ok();
        http.call("/v1/cases/CASE-1/resolve")
            .await
            .error(400, "INVALID_FIELD", Some("record_id"));
        let resolved = http.call(&format!("/v1/cases/{case}/resolve")).await.ok();
        assert_eq!(
            api.conversation(&sms, &resolved["position"]).await["reason"],
            "linked_case_resolved"
        );

        // An offer rejected.
        let rejected = api.arrive(SMS).await;
        let (offered, session) = next_offer(&mut dee).await;
        assert_eq!(offered, rejected);
        http.post(
            &conversation_path(&rejected, "reject"),
            json!({"agent_id": id(DEE), "session_number": session}),
        )
        .await
        .ok();

        // Pick mode: configured over the bus, picked over HTTP.
        let picks = QueueId(Uuid::now_v7());
        let workstream = WorkstreamId(picks.0);
        api.live
            .accepted(
                Actor::System,
                Command::ConfigureWorkstream(Workstream {
                    mode: RoutingMode::Pick,
                    ..Workstream::with_defaults(workstream, "picks", omni_core::Channel::Teams)
                }),
            )
            .await;
        api.live
            .accepted(
                Actor::System,
                Command::ConfigureQueue(QueueConfig {
                    id: picks,
                    name: "picks".into(),
                    workstream,
                    method: omni_core::AssignmentMethod::AdvancedRoundRobin,
                }),
            )
            .await;
        api.live
            .accepted(
                Actor::System,
                Command::AddAgentToQueue {
                    queue: picks,
                    agent: DEE,
                },
            )
            .await;
        let teams = api.arrive(picks).await;
        let pick = conversation_path(&teams, "pick");
        http.post(&pick, json!({"agent_id": id(ANN)}))
            .await
            .error(409, "NOT_SIGNED_IN", None);
        let picked = http.post(&pick, json!({"agent_id": id(DEE)})).await.ok();
        assert_eq!(
            api.conversation(&teams, &picked["position"]).await["primary_agent_id"],
            id(DEE)
        );

        // Desktop connection and sign-out.
        let agent = |action: &str| format!("/v1/agents/{}/{action}", id(DEE));
        http.call(&agent("reconnect"))
            .await
            .error(409, "NOT_DISCONNECTED", None);
        http.call(&agent("disconnect")).await.ok();
        http.call(&agent("reconnect")).await.ok();
        http.call(&agent("sign-out"))
            .await
            .error(409, "STILL_HANDLING", None);
        http.call("/v1/agents/dee/disconnect")
            .await
            .error(400, "INVALID_FIELD", Some("agent_id"));
        http.call(&format!("/v1/agents/{}/sign-out", id(BOB)))
            .await
            .error(409, "NOT_SIGNED_IN", None);
        api.sign_in(BOB).await;
        http.call(&format!("/v1/agents/{}/sign-out", id(BOB)))
            .await
            .ok();

        api.live.stop().await;
    });
}

#[test]
fn gateway_answers_presence_agents_queues_and_pages_past_a_hundred() {
    block_on(async {
        let api = start("gateway-presence").await;
        let http = &api.http;
        let presence = format!("/v1/agents/{}/presence", id(ANN));
        let away = PresenceId::AWAY.0.to_string();

        // REST presence.
        http.put(&presence, json!({"presence_id": away}))
            .await
            .error(409, "NOT_SIGNED_IN", None);
        api.sign_in(ANN).await;
        let changed = http.put(&presence, json!({"presence_id": away})).await.ok();
        assert_eq!(changed["presence"]["presence_id"], away);
        assert_eq!(changed["presence"]["base"], "away");
        assert_eq!(changed["presence_source"], "agent");
        http.put(
            &presence,
            json!({"presence_id": Uuid::now_v7().to_string()}),
        )
        .await
        .error(422, "UNKNOWN_PRESENCE", None);
        http.put(&presence, json!({"presence": away})).await.error(
            400,
            "INVALID_FIELD",
            Some("presence"),
        );
        let got = http.get(&presence).await.ok();
        assert_eq!(got["presence"]["base_code"], 192_360_003);
        http.get(&format!("/v1/agents/{}/presence", Uuid::now_v7()))
            .await
            .error(404, "NOT_FOUND", None);
        http.get("/v1/agents/ann/presence")
            .await
            .error(400, "INVALID_FIELD", Some("agent_id"));

        // The seed's custom APIs, with their body names.
        let available = PresenceId::AVAILABLE.0.to_string();
        let modified = http
            .post(
                "/v1/CCaaS_ModifyAgentPresence",
                json!({"ApiVersion": "1.0", "AgentId": id(ANN), "PresenceId": available}),
            )
            .await
            .ok();
        assert_eq!(modified["CurrentPresenceId"], available);
        assert_eq!(modified["PresenceModifiedBy"], "AGENT");
        assert_eq!(modified["IsAgentLoggedIn"], true);
        http.post(
            "/v1/CCaaS_ModifyAgentPresence",
            json!({"ApiVersion": "9", "AgentId": id(ANN), "PresenceId": available}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("ApiVersion"));
        http.post(
            "/v1/CCaaS_ModifyAgentPresence",
            json!({"ApiVersion": "1.0", "AgentId": id(BOB), "PresenceId": available}),
        )
        .await
        .error(409, "NOT_SIGNED_IN", None);
        http.post(
            "/v1/CCaaS_ModifyAgentPresence",
            json!({"ApiVersion": "1.0", "AgentId": id(ANN)}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("PresenceId"));
        let got = http
            .post(
                "/v1/CCaaS_GetPresence",
                json!({"ApiVersion": "1.0", "AgentId": id(ANN)}),
            )
            .await
            .ok();
        assert_eq!(got["AgentId"], id(ANN));
        assert_eq!(got["BasePresenceStatus"], 192_360_000);
        assert_eq!(got["AvailableUnitsCapacity"], 3);
        http.post(
            "/v1/CCaaS_GetPresence",
            json!({"ApiVersion": "1.0", "AgentId": "x"}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("AgentId"));
        http.post(
            "/v1/CCaaS_GetPresence",
            json!({"ApiVersion": "1.0", "AgentId": Uuid::now_v7().to_string()}),
        )
        .await
        .error(404, "NOT_FOUND", None);

        // One agent.
        let agent = http.get(&format!("/v1/agents/{}", id(ANN))).await.ok();
        assert_eq!(agent["signed_in"], true);
        assert_eq!(agent["queue_ids"].as_array().unwrap().len(), 3);
        http.get(&format!("/v1/agents/{}", Uuid::now_v7()))
            .await
            .error(404, "NOT_FOUND", None);

        // Queues.
        let queues = http.get("/v1/queues").await.ok();
        assert_eq!(queues["queues"].as_array().unwrap().len(), 4);
        http.get("/v1/queues?min_position=-1").await.error(
            400,
            "INVALID_FIELD",
            Some("min_position"),
        );
        let behind = http.get("/v1/queues?min_position=999999").await;
        behind.error(503, "NOT_READY", None).mentions("999999");
        assert_eq!(behind.headers[header::RETRY_AFTER], "1");

        // 130 agents and 130 conversations, paged.
        let extra: Vec<(Actor, Command)> = (0..126u128)
            .map(|n| {
                (
                    Actor::System,
                    Command::ProvisionAgent(profile(AgentId::from_u128(0xB000 + n), 2)),
                )
            })
            .chain((0..130).map(|n| {
                (
                    Actor::Customer,
                    Command::StartConversation {
                        conversation: omni_core::ConversationId(Uuid::now_v7()),
                        queue: EMPTY,
                        skills: vec![],
                        customer: format!("customer {n}"),
                    },
                )
            }))
            .collect();
        let outcomes = api.live.pipelined(&extra).await;
        let last = outcomes
            .iter()
            .filter_map(omni_proto::Outcome::last_position)
            .max()
            .expect("positions");
        let mut agents = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/v1/agents?page_size=50&min_position={last}");
            if let Some(token) = &token {
                path.push_str(&format!("&page_token={token}"));
            }
            let page = http.get(&path).await.ok();
            agents.extend(page["agents"].as_array().unwrap().iter().cloned());
            match page["next_page_token"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(agents.len(), 130, "every agent, over three pages");
        let signed_in = http
            .get("/v1/agents?signed_in=true&presence=available")
            .await
            .ok();
        assert_eq!(signed_in["agents"].as_array().unwrap().len(), 1);
        http.get("/v1/agents?page_size=0")
            .await
            .error(400, "INVALID_FIELD", Some("page_size"));
        http.get("/v1/agents?page_size=1001")
            .await
            .error(400, "INVALID_FIELD", Some("page_size"));
        http.get("/v1/agents?signed_in=yes")
            .await
            .error(400, "INVALID_FIELD", Some("signed_in"));
        http.get("/v1/agents?page_token=next").await.error(
            400,
            "INVALID_FIELD",
            Some("page_token"),
        );
        let waiting = format!("/v1/conversations?queue={}&status=open", EMPTY.0);
        let all = http.get(&format!("{waiting}&page_size=1000")).await.ok();
        assert_eq!(
            all["conversations"].as_array().unwrap().len(),
            130,
            "no cap of 100"
        );
        let first = http.get(&waiting).await.ok();
        assert_eq!(first["conversations"].as_array().unwrap().len(), 100);
        let next = first["next_page_token"].as_str().expect("more follow");
        let second = http.get(&format!("{waiting}&page_token={next}")).await.ok();
        assert_eq!(second["conversations"].as_array().unwrap().len(), 30);
        assert_eq!(second["next_page_token"], Value::Null);

        api.live.stop().await;
    });
}

#[test]
fn gateway_guards_tokens_limits_routes_and_the_engine() {
    block_on(async {
        let api = start("gateway-guards").await;
        let http = &api.http;

        // Tokens: none, wrong, a non-bearer scheme; the query parameter; the public document.
        http.send(Method::GET, "/v1/queues", &[], Vec::new())
            .await
            .error(401, "UNAUTHORIZED", None);
        http.send(
            Method::GET,
            "/v1/queues",
            &[("authorization", "Bearer gateway-test-toke")],
            Vec::new(),
        )
        .await
        .error(401, "UNAUTHORIZED", None);
        http.send(
            Method::GET,
            "/v1/queues",
            &[("authorization", &format!("Basic {TOKEN}"))],
            Vec::new(),
        )
        .await
        .error(401, "UNAUTHORIZED", None);
        http.send(Method::GET, "/v1/queues?access_token=nope", &[], Vec::new())
            .await
            .error(401, "UNAUTHORIZED", None);
        http.send(
            Method::GET,
            &format!("/v1/queues?access_token={TOKEN}"),
            &[],
            Vec::new(),
        )
        .await
        .ok();
        let document = http
            .send(Method::GET, "/openapi.json", &[], Vec::new())
            .await
            .ok();
        assert_eq!(document["openapi"], "3.1.0");

        // The document describes exactly what is served, the routes the engine mounts (the
        // webhooks) included, and everything it describes is routed (answered by an endpoint,
        // not by the router's 404 or 405).
        let mut served = api.live.engine.http_routes.clone();
        let mut documented = omni_gateway::documented_routes(&document);
        served.sort();
        documented.sort();
        assert_eq!(served, documented);
        for (method, path) in &documented {
            // A page or a never-ending event stream (the dashboard's) answers no JSON to wait
            // for; tests/dashboard.rs calls those.
            let answers_json = document["paths"][path][method]["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(status, _)| status.starts_with('2'))
                .all(|(_, answer)| {
                    answer
                        .get("content")
                        .is_none_or(|content| content.get("application/json").is_some())
                });
            if !answers_json {
                continue;
            }
            let concrete = path
                .replace("{action}", "start")
                .split('/')
                .map(|s| if s.starts_with('{') { "not-an-id" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = http.authorized(method.clone(), &concrete, None).await;
            assert!(
                answer.status != StatusCode::METHOD_NOT_ALLOWED
                    && answer.json["message"] != "no such route",
                "{method} {path} is documented but not served: {}",
                answer.json
            );
        }

        // Unknown routes and methods, oversized bodies: the same JSON errors.
        http.get("/v1/nothing").await.error(404, "NOT_FOUND", None);
        http.authorized(Method::DELETE, "/v1/queues", None)
            .await
            .error(405, "METHOD_NOT_ALLOWED", None);
        let big = json!({"queue_id": CHAT.0.to_string(), "customer": "x".repeat(70 * 1024)});
        http.post("/v1/conversations", big)
            .await
            .error(413, "PAYLOAD_TOO_LARGE", Some("body"));

        // A second gateway on the same bus, through the public seam: a tight rate limit and
        // a mounted router behind the same guard.
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let mut config = omni_gateway::Config::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            vec![TOKEN.to_owned(), "other-token".to_owned()],
        );
        config.rate_limit = omni_gateway::RateLimit {
            per_second: 0.2,
            burst: 2,
        };
        let bound = omni_gateway::bind(config).await.expect("the gateway binds");
        let second = Http::new(bound.local_addr());
        let documented_as = |id: &str| json!({"operationId": id, "responses": {}});
        let mounted = omni_gateway::Mounted::new()
            .route(
                Method::GET,
                "/dashboard",
                || async { axum::Json(json!({"mounted": true})) },
                (),
                documented_as("dashboard"),
            )
            .route(
                Method::POST,
                "/v1/webhooks",
                |axum::Json(body): axum::Json<Value>| async move { axum::Json(body) },
                (),
                documented_as("echo"),
            );
        let second_routes = omni_gateway::served_routes(&mounted);
        let client = omni_engine::connect(&api.live.engine.nats_url, "gateway-test")
            .await
            .expect("a client");
        let served = tokio::spawn(bound.serve(client, mounted, shutdown));
        let dashboard = format!("/dashboard?access_token={TOKEN}");
        let mounted = second
            .send(Method::GET, &dashboard, &[], Vec::new())
            .await
            .ok();
        assert_eq!(mounted["mounted"], true);
        let document = second
            .send(Method::GET, "/openapi.json", &[], Vec::new())
            .await
            .ok();
        let mut documented = omni_gateway::documented_routes(&document);
        let mut second_routes = second_routes;
        documented.sort();
        second_routes.sort();
        assert_eq!(documented, second_routes);
        assert!(second_routes.contains(&("get".to_owned(), "/dashboard".to_owned())));
        second
            .send(Method::GET, "/dashboard", &[], Vec::new())
            .await
            .error(401, "UNAUTHORIZED", None);
        second
            .post_raw(
                "/v1/webhooks",
                &[("content-type", "application/json")],
                b"[",
            )
            .await
            .error(400, "BAD_REQUEST", None);
        let limited = second.get("/v1/queues").await;
        limited.error(429, "RATE_LIMITED", None);
        let retry_after: u64 = limited.headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=5).contains(&retry_after), "{retry_after}");
        second
            .send(
                Method::GET,
                "/v1/queues",
                &[("authorization", "Bearer other-token")],
                Vec::new(),
            )
            .await
            .ok();
        stop.send(true).expect("the gateway listens for shutdown");
        served
            .await
            .expect("the gateway task")
            .expect("the gateway stops cleanly");

        // The engine gone: its gateway answers 503 with Retry-After, not 500.
        let nats_dir = crate::support::TempDir::new("gateway-no-engine");
        let nats = omni_engine::NatsServer::start(nats_dir.path())
            .await
            .expect("a bare nats-server");
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let mut config = omni_gateway::Config::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            vec![TOKEN.to_owned()],
        );
        config.engine_timeout = Duration::from_millis(300);
        let bound = omni_gateway::bind(config).await.expect("the gateway binds");
        let lonely = Http::new(bound.local_addr());
        let client = omni_engine::connect(&nats.url, "gateway-test")
            .await
            .expect("a client");
        tokio::spawn(bound.serve(client, omni_gateway::Mounted::new(), shutdown));
        let answer = lonely
            .call(&format!("/v1/agents/{}/sign-in", id(ANN)))
            .await;
        answer.error(503, "UNAVAILABLE", None);
        assert_eq!(answer.headers[header::RETRY_AFTER], "1");
        lonely
            .get("/v1/queues")
            .await
            .error(503, "UNAVAILABLE", None);
        nats.stop().await;

        api.live.stop().await;
    });
}

#[test]
fn a_gateway_does_not_start_without_tokens_or_on_a_taken_port() {
    block_on(async {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let dir = crate::support::TempDir::new("gateway-taken");
        let mut config = omni_engine::EngineConfig::new(dir.path());
        config.http_addr = Some(taken.local_addr().expect("its address"));
        let error = omni_engine::Engine::start(config)
            .await
            .expect_err("the engine refuses a taken HTTP port");
        assert!(
            matches!(error, omni_engine::EngineError::Gateway(_)),
            "{error}"
        );

        let config = omni_gateway::Config::new(SocketAddr::from(([127, 0, 0, 1], 0)), vec![]);
        assert!(matches!(
            omni_gateway::bind(config).await,
            Err(omni_gateway::GatewayError::NoTokens)
        ));
        let config = omni_gateway::Config::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            vec!["two words".to_owned()],
        );
        assert!(matches!(
            omni_gateway::bind(config).await,
            Err(omni_gateway::GatewayError::BadToken)
        ));
    });
}

#[test]
fn gateway_administers_workstreams_queues_presences_and_agents() {
    block_on(async {
        let live = Live::start_with("gateway-admin", |config| {
            config.http_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
            config.api_tokens = vec![TOKEN.to_owned()];
        })
        .await;
        let http = Http::new(live.engine.http_addr.expect("the gateway is served"));
        let (workstream, queue, lunch, eve) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );

        // A workstream: its channel's defaults for what is left out; the core judges the rest.
        let path = format!("/v1/workstreams/{workstream}");
        http.put(&path, json!({"name": "web", "channel": "fax"}))
            .await
            .error(400, "INVALID_FIELD", Some("channel"));
        http.put(
            &path,
            json!({"name": "web", "channel": "live_chat", "allowed_presences": ["sleepy"]}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("allowed_presences"));
        http.put(
            &path,
            json!({"name": "web", "channel": "live_chat", "wrap_up_blocking_secs": 60}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("wrap_up_blocking_secs"));
        http.put(
            &path,
            json!({"name": "web", "channel": "live_chat", "allowed_presences": []}),
        )
        .await
        .error(422, "INVALID_CONFIG", None);
        http.put(
            &path,
            json!({"name": "web", "channel": "live_chat", "wrap_up_blocking": "for_seconds", "wrap_up_blocking_secs": 10}),
        )
        .await
        .error(422, "INVALID_CONFIG", None)
        .mentions("30 s to 60 min");
        let configured = http
            .put(
                &path,
                json!({"name": "web", "channel": "live_chat", "allowed_presences": ["available"],
                       "wrap_up_blocking": "for_seconds", "wrap_up_blocking_secs": 60}),
            )
            .await
            .ok();
        assert_eq!(configured["events"][0]["kind"], "WorkstreamConfigured");

        // A queue following it.
        let path = format!("/v1/queues/{queue}");
        http.put(
            &path,
            json!({"name": "web", "workstream_id": Uuid::now_v7().to_string()}),
        )
        .await
        .error(404, "UNKNOWN_WORKSTREAM", None);
        http.put(
            &path,
            json!({"name": "web", "workstream_id": workstream.to_string(), "method": "random"}),
        )
        .await
        .error(400, "INVALID_FIELD", Some("method"));
        http.put(
            &path,
            json!({"name": "web", "workstream_id": workstream.to_string(), "method": "least_active"}),
        )
        .await
        .ok();

        // A custom presence.
        let path = format!("/v1/presences/{lunch}");
        http.put(&path, json!({"name": "Lunch", "base": "hungry"}))
            .await
            .error(400, "INVALID_FIELD", Some("base"));
        http.put(&path, json!({"name": "Lunch", "base": "away"}))
            .await
            .ok();

        // An agent, their capacity and their queue.
        let path = format!("/v1/agents/{eve}");
        http.put(&path, json!({"name": "Eve", "capacity_units": 0}))
            .await
            .error(400, "INVALID_FIELD", Some("capacity_units"));
        http.put(
            &path,
            json!({"name": "Eve", "capacity_units": 4, "skills": ["fr"]}),
        )
        .await
        .ok();
        let capacity = |agent: Uuid| format!("/v1/agents/{agent}/capacity");
        http.put(&capacity(Uuid::now_v7()), json!({"capacity_units": 6}))
            .await
            .error(404, "UNKNOWN_AGENT", None);
        http.put(&capacity(eve), json!({"capacity_units": "six"}))
            .await
            .error(400, "INVALID_FIELD", Some("capacity_units"));
        http.put(&capacity(eve), json!({"capacity_units": 6}))
            .await
            .ok();
        let member = format!("/v1/queues/{queue}/members/{eve}");
        http.put(&member, json!({})).await.ok();
        http.put(&member, json!({}))
            .await
            .error(409, "ALREADY_MEMBER", None);
        http.authorized(Method::DELETE, &member, None).await.ok();
        http.authorized(Method::DELETE, &member, None)
            .await
            .error(409, "NOT_MEMBER", None);
        http.authorized(Method::DELETE, &format!("/v1/queues/q/members/{eve}"), None)
            .await
            .error(400, "INVALID_FIELD", Some("queue_id"));
        let joined = http.put(&member, json!({})).await.ok();

        // What the read model makes of it, and the custom presence in use.
        let agent = http
            .get(&format!(
                "/v1/agents/{eve}?min_position={}",
                joined["position"]
            ))
            .await
            .ok();
        assert_eq!(agent["capacity_units"], 6);
        assert_eq!(agent["skills"], json!(["fr"]));
        assert_eq!(agent["queue_ids"], json!([queue.to_string()]));
        let queues = http.get("/v1/queues").await.ok();
        assert_eq!(queues["queues"][0]["method"], "least_active");
        assert_eq!(queues["queues"][0]["channel"], "live_chat");
        http.call(&format!("/v1/agents/{eve}/sign-in")).await.ok();
        let away = http
            .put(
                &format!("/v1/agents/{eve}/presence"),
                json!({"presence_id": lunch.to_string()}),
            )
            .await
            .ok();
        assert_eq!(away["presence"]["presence_id"], lunch.to_string());
        assert_eq!(away["presence"]["base"], "away");

        live.stop().await;
    });
}
