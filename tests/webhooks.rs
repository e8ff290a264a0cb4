//! Presence webhooks end to end: a live engine, the webhook service following it, its API
//! served by the real HTTP gateway with a bearer token, and real local receivers that record
//! what they are sent. The API tests use the engine's own gateway (`http_addr`), where the
//! engine mounts the service; the delivery tests run the service with short retry settings
//! (so a receiver's outage lasts milliseconds, not minutes) behind a gateway of their own, so
//! they can stop and restart it under a running engine.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::http::{HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http_body_util::Full;
use omni_core::{Actor, AgentId, Command, PresenceId, PresenceSource, Timestamp};
use omni_proto::Outcome;
use omni_webhooks::{
    AgentStatus, Config, DELIVERY_HEADER, Notification, Organization, POSITION_HEADER, RetryPolicy,
    SIGNATURE_HEADER, Webhooks,
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::live::{Live, block_on};
use crate::support::{ANN, BOB, HttpClient, TempDir, exchange, http_client};

const SECRET: &str = "a-receiver-shared-secret";
const TOKEN: &str = "webhooks-test-token";
const WAIT: Duration = Duration::from_secs(20);

// --- the payload's shape --------------------------------------------------------------------

/// JSON read keeping the order of object members, to hold ours to the seed's order.
#[derive(Debug, Clone, PartialEq)]
enum Ordered {
    Null,
    Bool(bool),
    Number(String),
    Text(String),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Ordered, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_none<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
                Ok(Ordered::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
                Ok(Ordered::Number(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
                Ok(Ordered::Number(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Ordered, E> {
                Ok(Ordered::Number(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
                Ok(Ordered::Text(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Ordered::Object(members))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn is_uuid(s: &str) -> bool {
    Uuid::parse_str(s).is_ok()
}

/// `/Date(ms)/` or `/Date(ms+0000)/`.
fn is_date(s: &str) -> bool {
    s.strip_prefix("/Date(")
        .and_then(|rest| rest.strip_suffix(")/"))
        .is_some_and(|inner| {
            let ms = inner.strip_suffix("+0000").unwrap_or(inner);
            !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit())
        })
}

/// Attribute values and context fields that carry data, not shape: the seed's values are an
/// example, ours are the agent's.
const DATA_KEYS: &[&str] = &[
    "msdyn_availableunitscapacity",
    "msdyn_isagentloggedin",
    "msdyn_presencemodifiedby",
    "RowVersion",
    "OrganizationName",
    "InitiatingUserAgent",
];

/// Checks that `ours` has the seed's structure field for field: the same members in the same
/// order, the same kinds of values, the same fixed values (type hints, logical names, message,
/// stage, depth, mode…); ids are UUIDs and dates WCF dates where the seed has them.
fn same_shape(seed: &Ordered, ours: &Ordered, path: &str) {
    match (seed, ours) {
        (Ordered::Object(a), Ordered::Object(b)) => {
            let keys_a: Vec<&str> = a.iter().map(|(k, _)| k.as_str()).collect();
            let keys_b: Vec<&str> = b.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys_a, keys_b, "the members of {path}");
            // A key/value entry: its key names what the value is.
            let entry_key = a.iter().find_map(|(k, v)| match (k.as_str(), v) {
                ("key", Ordered::Text(key)) => Some(key.as_str()),
                _ => None,
            });
            for ((key, va), (_, vb)) in a.iter().zip(b) {
                let inner = format!(
                    "{path}.{}",
                    entry_key.filter(|_| key == "value").unwrap_or(key)
                );
                if DATA_KEYS.contains(&key.as_str())
                    || (key == "value" && entry_key.is_some_and(|k| DATA_KEYS.contains(&k)))
                {
                    assert_eq!(
                        std::mem::discriminant(va),
                        std::mem::discriminant(vb),
                        "the kind of {inner}"
                    );
                } else {
                    same_shape(va, vb, &inner);
                }
            }
        }
        (Ordered::Array(a), Ordered::Array(b)) => {
            assert_eq!(a.len(), b.len(), "the length of {path}");
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                same_shape(va, vb, &format!("{path}[{i}]"));
            }
        }
        (Ordered::Text(a), Ordered::Text(b)) if is_uuid(a) => {
            assert!(is_uuid(b), "{path} is a UUID in the seed, {b:?} in ours");
        }
        (Ordered::Text(a), Ordered::Text(b)) if is_date(a) => {
            assert!(is_date(b), "{path} is a date in the seed, {b:?} in ours");
            assert_eq!(
                a.ends_with("+0000)/"),
                b.ends_with("+0000)/"),
                "the form of {path}"
            );
        }
        (a, b) => assert_eq!(a, b, "{path}"),
    }
}

fn seed() -> Ordered {
    serde_json::from_str(include_str!("fixtures/agentstatus-update-seed.json"))
        .expect("the seed's payload is JSON")
}

const AGENT: AgentId = AgentId::from_u128(0x97c9_0b02_4e38_ef11_a315_000d_3a5a_54dc);

fn sample_notification() -> Notification {
    Notification {
        status: AgentStatus {
            agent: AGENT,
            presence: PresenceId::BUSY,
            available_units: 100,
            logged_in: true,
            presence_modified_by: PresenceSource::Agent,
            presence_modified_on: Timestamp(1_722_582_038_000),
            capacity_modified_on: Timestamp(1_722_581_814_000),
        },
        changed: vec!["msdyn_currentpresenceid", "msdyn_presencemodifiedon"],
        position: 5_948_260,
        event_id: Uuid::from_u128(0x1a14_c3ec_9c50_ef11_bfe3_0022_4802_dbb1),
        command_id: Uuid::from_u128(0x84d0_3007_6a8f_41da_aeae_7b64_60bb_7a04),
        correlation_id: Uuid::from_u128(0xdddd_3333_ee44_5555_66ff_7777_77aa_aaaa),
        actor: Actor::Agent(AGENT),
        at: Timestamp(1_722_582_039_000),
    }
}

/// An attribute of the posted `Target`.
fn attribute<'a>(payload: &'a Value, key: &str) -> &'a Value {
    payload["InputParameters"][0]["value"]["Attributes"]
        .as_array()
        .expect("Target has attributes")
        .iter()
        .find(|entry| entry["key"] == key)
        .map(|entry| &entry["value"])
        .unwrap_or_else(|| panic!("no attribute {key}"))
}

#[test]
fn the_payload_has_the_seeds_structure_field_for_field() {
    let endpoint = Uuid::from_u128(0x8ff4_bda5_9d4e_ef11_bfe3_0022_4802_dbb1);
    let body =
        omni_webhooks::render_payload(&sample_notification(), &Organization::default(), endpoint);
    let ours: Ordered = serde_json::from_str(&body).expect("our payload is JSON");
    same_shape(&seed(), &ours, "$");
    // Dates are written as .NET writes them.
    assert!(body.contains(r#""\/Date(1722582038000)\/""#), "{body}");

    let payload: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(payload["MessageName"], "Update");
    assert_eq!(payload["PrimaryEntityName"], "msdyn_agentstatus");
    let presence = attribute(&payload, "msdyn_currentpresenceid");
    assert_eq!(presence["LogicalName"], "msdyn_presence");
    assert_eq!(presence["Id"], "efdeb843-c07a-e811-8162-000d3aa11f50");
    assert_eq!(attribute(&payload, "msdyn_availableunitscapacity"), 100);
    assert_eq!(attribute(&payload, "msdyn_isagentloggedin"), true);
    assert_eq!(attribute(&payload, "msdyn_presencemodifiedby"), "AGENT");
    assert_eq!(
        attribute(&payload, "msdyn_presencemodifiedon"),
        "/Date(1722582038000)/"
    );
    assert_eq!(
        attribute(&payload, "msdyn_capacitymodifiedon"),
        "/Date(1722581814000)/"
    );
    assert_eq!(attribute(&payload, "modifiedon"), "/Date(1722582039000)/");
    assert_eq!(
        attribute(&payload, "msdyn_agentid")["Id"],
        AGENT.0.to_string()
    );
    assert_eq!(payload["OperationCreatedOn"], "/Date(1722582039000+0000)/");
    assert_eq!(payload["OwningExtension"]["Id"], endpoint.to_string());
    assert_eq!(
        payload["InputParameters"][0]["value"]["RowVersion"],
        "5948260"
    );
}

#[test]
fn the_sample_in_the_docs_has_the_seeds_structure() {
    let docs = include_str!("../docs/webhooks.md");
    let start = docs
        .find("```json\n")
        .expect("docs/webhooks.md has a JSON sample")
        + 8;
    let end = start + docs[start..].find("```").expect("the sample ends");
    let sample: Ordered = serde_json::from_str(&docs[start..end]).expect("the sample is JSON");
    same_shape(&seed(), &sample, "$");
}

#[test]
fn the_signature_is_the_hmac_sha256_of_the_body() {
    let body = br#"{"MessageName":"Update"}"#;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("a key");
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        omni_webhooks::signature(SECRET, body),
        format!("sha256={expected}")
    );
}

#[test]
fn the_backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() {
    let policy = RetryPolicy::default();
    for attempt in 1..=20 {
        let cap = (policy.first_backoff * 2u32.pow((attempt - 1).min(20))).min(policy.max_backoff);
        let wait = omni_webhooks::backoff(&policy, attempt);
        assert!(
            cap / 2 <= wait && wait <= cap,
            "attempt {attempt}: {wait:?} for a cap of {cap:?}"
        );
    }
}

// --- harness ---------------------------------------------------------------------------------

/// A live engine with the standard world of the rule tests, and the webhook service on it,
/// configured for tests and then by `adjust`. Keep the directory until the end.
async fn started(name: &str, adjust: impl FnOnce(&mut Config)) -> (TempDir, Live, Service) {
    let dir = TempDir::new(name);
    let mut config = test_config(&dir.path().join("webhooks"));
    adjust(&mut config);
    let live = Live::standard(name, 1).await;
    let service = Service::start(config, &live).await;
    (dir, live, service)
}

/// The URL of a receiver that is down.
async fn dead_url() -> String {
    format!("http://127.0.0.1:{}/hook", dead_port().await)
}

fn test_config(path: &Path) -> Config {
    let mut config = Config::new(path);
    config.retry = RetryPolicy {
        max_attempts: 1_000,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
    };
    config.request_timeout = Duration::from_secs(2);
    config
}

/// Opens the service's database, waiting for a previous instance's lock to go.
async fn open(config: Config) -> Webhooks {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Webhooks::open(config.clone()) {
            Ok(webhooks) => return webhooks,
            Err(e) if tokio::time::Instant::now() < deadline => {
                assert_lock_held(&e);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the webhook service opens: {e}"),
        }
    }
}

/// sled releases its lock from a background thread after the last handle goes.
fn assert_lock_held(error: &omni_webhooks::WebhooksError) {
    assert!(
        error.to_string().contains("lock"),
        "only a held lock is waited out: {error}"
    );
}

/// The webhook service running against an engine, with its API served by a gateway on a local
/// port, as the engine serves it.
struct Service {
    webhooks: Webhooks,
    api: Api,
    stop: watch::Sender<bool>,
    run: JoinHandle<Result<(), omni_webhooks::WebhooksError>>,
    server: JoinHandle<()>,
}

impl Service {
    /// Starts the service and waits until it has stored everything the log holds now, so an
    /// endpoint registered next hears only of what happens afterwards.
    async fn start(config: Config, live: &Live) -> Service {
        let nats_url = &live.engine.nats_url;
        let webhooks = open(config).await;
        let (stop, shutdown) = watch::channel(false);
        let client = omni_engine::connect(nats_url, omni_webhooks::SERVICE)
            .await
            .expect("the webhook service connects");
        let gateway = omni_gateway::Config::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            vec![TOKEN.to_owned()],
        );
        let bound = omni_gateway::bind(gateway)
            .await
            .expect("the gateway binds");
        let addr = bound.local_addr();
        let gateway_client = omni_engine::connect(nats_url, "gateway")
            .await
            .expect("the gateway connects");
        let mounted = webhooks.mounted();
        let server_shutdown = shutdown.clone();
        let server = tokio::spawn(async move {
            bound
                .serve(gateway_client, mounted, server_shutdown)
                .await
                .expect("the API serves");
        });
        let run = tokio::spawn(webhooks.clone().run(client, shutdown));
        let head = live
            .bus
            .read_log(1, 1)
            .await
            .expect("the log is served")
            .head;
        let deadline = tokio::time::Instant::now() + WAIT;
        while webhooks.checkpoint().expect("a checkpoint") < head {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the service catches up with the log"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Service {
            webhooks,
            api: Api::new(addr, Some(TOKEN)),
            stop,
            run,
            server,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.run
            .await
            .expect("the service does not panic")
            .expect("the service stops cleanly");
        self.server.await.expect("the API server stops");
    }
}

/// An HTTP client on the gateway, presenting `token` when it has one.
struct Api {
    base: String,
    token: Option<&'static str>,
    client: HttpClient,
}

impl Api {
    fn new(addr: SocketAddr, token: Option<&'static str>) -> Api {
        Api {
            base: format!("http://{addr}"),
            token,
            client: http_client(),
        }
    }

    /// The answer's status and body as bytes.
    async fn raw(&self, method: Method, path: &str, body: Option<&str>) -> (StatusCode, Bytes) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(token) = self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
            .expect("a request");
        let (status, _, bytes) = exchange(&self.client, request).await;
        (status, bytes)
    }

    async fn call(&self, method: Method, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        let (status, bytes) = self.raw(method, path, body).await;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("the API answers JSON")
        };
        (status, value)
    }

    /// Registers `url` with the test secret; returns the id.
    async fn register(&self, url: &str) -> String {
        let body =
            json!({"url": url, "secret": SECRET, "description": "test receiver"}).to_string();
        let (status, answer) = self.call(Method::POST, "/v1/webhooks", Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer["id"].as_str().expect("an id").to_owned()
    }

    /// The registration `id`, which must exist.
    async fn show(&self, id: &str) -> Value {
        let (status, shown) = self
            .call(Method::GET, &format!("/v1/webhooks/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        shown
    }

    async fn deliveries(&self, id: &str) -> Vec<Value> {
        let (status, page) = self
            .call(Method::GET, &format!("/v1/webhooks/{id}/deliveries"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["deliveries"].as_array().expect("a list").clone()
    }
}

/// What a receiver was sent.
#[derive(Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    fn payload(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    fn agent(&self) -> String {
        attribute(&self.payload(), "msdyn_agentid")["Id"]
            .as_str()
            .expect("an id")
            .to_owned()
    }

    fn presence(&self) -> String {
        attribute(&self.payload(), "msdyn_currentpresenceid")["Id"]
            .as_str()
            .expect("an id")
            .to_owned()
    }

    fn position(&self) -> u64 {
        self.header(POSITION_HEADER).parse().expect("a position")
    }
}

/// A local webhook receiver: answers 200 and records every request.
struct Receiver {
    addr: SocketAddr,
    received: mpsc::UnboundedReceiver<Received>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Listens on `port` (0: any free one).
    async fn start(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the receiver binds");
        let addr = listener.local_addr().expect("addr");
        let (tx, received) = mpsc::unbounded_channel();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(Received { headers, body });
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("the receiver serves");
        });
        Receiver {
            addr,
            received,
            stop,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The next request within `WAIT`.
    async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.received.recv())
            .await
            .expect("a delivery arrives in time")
            .expect("the receiver runs")
    }

    /// The next delivery about `agent` in `presence`, skipping others.
    async fn next_about(&mut self, agent: AgentId, presence: PresenceId) -> Received {
        self.next_where(|r| {
            r.agent() == agent.0.to_string() && r.presence() == presence.0.to_string()
        })
        .await
    }

    /// The next delivery that `wanted`, skipping others.
    async fn next_where(&mut self, wanted: impl Fn(&Received) -> bool) -> Received {
        loop {
            let received = self.next().await;
            if wanted(&received) {
                return received;
            }
        }
    }

    /// Stops listening; returns the port, free again.
    async fn stop(self) -> u16 {
        let _ = self.stop.send(());
        self.task.await.expect("the receiver stops");
        self.addr.port()
    }
}

/// A local port nobody listens on (a receiver that is down).
async fn dead_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("addr").port()
}

fn valid_signature(received: &Received) -> bool {
    received.header(SIGNATURE_HEADER) == omni_webhooks::signature(SECRET, &received.body)
}

async fn set_presence(live: &Live, agent: AgentId, presence: PresenceId) -> u64 {
    let outcome = live
        .accepted(
            Actor::Agent(agent),
            Command::SetPresence { agent, presence },
        )
        .await;
    outcome
        .last_position()
        .expect("a presence change is an event")
}

/// Waits until the delivery log of `id` has a delivery at `position` in `state` with at least
/// `attempts` attempts.
async fn wait_for_delivery(
    api: &Api,
    id: &str,
    position: u64,
    state: &str,
    attempts: u64,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = api
            .deliveries(id)
            .await
            .into_iter()
            .find(|d| d["position"] == position);
        if let Some(d) = found.as_ref().filter(|d| {
            d["state"] == state && d["attempts"].as_u64().is_some_and(|a| a >= attempts)
        }) {
            return d.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {state} delivery at {position} with {attempts}+ attempts: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// --- the API -----------------------------------------------------------------------------------

/// A request the API refuses: method, path, body, and the status, error code and field of the
/// answer.
type BadCase<'a> = (
    Method,
    String,
    Option<&'a str>,
    StatusCode,
    &'a str,
    Option<&'a str>,
);

/// The standard world on an engine serving its gateway (with the webhooks mounted) and
/// `/metrics`, and a client presenting the engine's token.
async fn engine_with_api(name: &str) -> (Live, Api) {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let live = Live::standard_with(name, |config| {
        config.http_addr = Some(local);
        config.api_tokens = vec![TOKEN.to_owned()];
        config.metrics_addr = Some(local);
    })
    .await;
    let addr = live.engine.http_addr.expect("the gateway is served");
    (live, Api::new(addr, Some(TOKEN)))
}

/// The value of the counter `name` in a Prometheus text answer.
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no counter {name} in:\n{text}"))
}

#[test]
fn the_engine_serves_the_webhooks_behind_its_gateway_documents_and_counts_them() {
    block_on(async {
        let (live, api) = engine_with_api("webhooks-engine").await;
        let anonymous = Api::new(live.engine.http_addr.expect("served"), None);
        let body = Some(r#"{"url": "https://example.com/hooks/presence"}"#);
        for method in [Method::GET, Method::POST] {
            let (status, answer) = anonymous.call(method, "/v1/webhooks", body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
            assert_eq!(answer["code"], "UNAUTHORIZED", "{answer}");
        }
        let (_, listed) = api.call(Method::GET, "/v1/webhooks", None).await;
        assert_eq!(
            listed,
            json!({"webhooks": []}),
            "nothing registered without a token"
        );

        let mut receiver = Receiver::start(0).await;
        let id = api.register(&receiver.url()).await;
        live.accepted(Actor::Agent(ANN), Command::SignIn { agent: ANN })
            .await;
        let away = set_presence(&live, ANN, PresenceId::AWAY).await;
        let received = receiver.next_about(ANN, PresenceId::AWAY).await;
        assert!(valid_signature(&received));
        wait_for_delivery(&api, &id, away, "delivered", 1).await;

        // The served document lists the mounted routes with their bodies and errors, and
        // exactly what the gateway serves.
        let (status, document) = anonymous.call(Method::GET, "/openapi.json", None).await;
        assert_eq!(status, StatusCode::OK);
        let mut documented = omni_gateway::documented_routes(&document);
        let mut served = live.engine.http_routes.clone();
        documented.sort();
        served.sort();
        assert_eq!(documented, served);
        let error = json!({"$ref": "#/components/schemas/Error"});
        for (method, path, error_status) in [
            ("post", "/v1/webhooks", "422"),
            ("get", "/v1/webhooks", "401"),
            ("get", "/v1/webhooks/{id}", "404"),
            ("delete", "/v1/webhooks/{id}", "404"),
            ("get", "/v1/webhooks/{id}/deliveries", "400"),
        ] {
            assert!(served.contains(&(method.to_owned(), path.to_owned())));
            let responses = &document["paths"][path][method]["responses"];
            for status in [error_status, "401", "429"] {
                assert_eq!(
                    responses[status]["content"]["application/json"]["schema"], error,
                    "{method} {path} {status}"
                );
            }
        }
        let registration = &document["paths"]["/v1/webhooks"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert_eq!(registration["required"], json!(["url"]));
        assert_eq!(
            document["paths"]["/v1/webhooks/{id}"]["get"]["responses"]["200"]["content"]["application/json"]
                ["schema"]["$ref"],
            "#/components/schemas/Webhook"
        );
        for schema in [
            "Webhook",
            "WebhookList",
            "WebhookDelivery",
            "WebhookDeliveryPage",
        ] {
            assert!(
                document["components"]["schemas"][schema].is_object(),
                "{schema}"
            );
        }

        // Its counters are in the engine's /metrics.
        let metrics = Api::new(live.engine.metrics_addr.expect("metrics are served"), None);
        let (status, text) = metrics.raw(Method::GET, "/metrics", None).await;
        assert_eq!(status, StatusCode::OK);
        let text = String::from_utf8_lossy(&text);
        assert!(counter(&text, "omni_webhook_deliveries_delivered_total") >= 1);
        assert!(counter(&text, "omni_webhook_attempts_total") >= 1);

        receiver.stop().await;
        live.stop().await;
    });
}

#[test]
fn registrations_are_created_listed_shown_and_deleted() {
    block_on(async {
        let (live, api) = engine_with_api("webhooks-api").await;
        let api = &api;

        let (status, created) = api
            .call(
                Method::POST,
                "/v1/webhooks",
                Some(r#"{"url": "https://example.com/hooks/presence", "description": "crm"}"#),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().expect("an id").to_owned();
        assert!(Uuid::parse_str(&id).is_ok());
        assert_eq!(created["url"], "https://example.com/hooks/presence");
        assert_eq!(created["description"], "crm");
        let secret = created["secret"].as_str().expect("a generated secret");
        assert_eq!(secret.len(), 64, "32 random bytes, hex");

        let other = api.register("http://127.0.0.1:9/other").await;

        let (status, listed) = api.call(Method::GET, "/v1/webhooks", None).await;
        assert_eq!(status, StatusCode::OK);
        let ids: Vec<&str> = listed["webhooks"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|w| w["id"].as_str().expect("an id"))
            .collect();
        assert_eq!(ids, [id.as_str(), other.as_str()], "in registration order");
        assert!(
            listed["webhooks"][0].get("secret").is_none(),
            "secrets are shown once"
        );

        let shown = api.show(&id).await;
        assert_eq!(shown["url"], "https://example.com/hooks/presence");
        assert_eq!(shown["pending"], 0);
        assert!(shown.get("secret").is_none());

        let (status, page) = api
            .call(
                Method::GET,
                &format!("/v1/webhooks/{id}/deliveries?limit=10"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page, json!({"deliveries": [], "next_before": null}));

        let (status, _) = api
            .call(Method::DELETE, &format!("/v1/webhooks/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, gone) = api
            .call(Method::GET, &format!("/v1/webhooks/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(gone["code"], "NOT_FOUND");
        let (_, listed) = api.call(Method::GET, "/v1/webhooks", None).await;
        assert_eq!(listed["webhooks"].as_array().map(Vec::len), Some(1));

        live.stop().await;
    });
}

#[test]
fn bad_input_is_refused_naming_what_was_wrong() {
    block_on(async {
        let (live, api) = engine_with_api("webhooks-bad").await;
        let api = &api;
        let known = api.register("http://127.0.0.1:9/hook").await;
        let unknown = Uuid::now_v7();

        let cases: &[BadCase] = &[
            (
                Method::POST,
                "/v1/webhooks".into(),
                Some("{not json"),
                StatusCode::BAD_REQUEST,
                "INVALID_JSON",
                Some("body"),
            ),
            (
                Method::POST,
                "/v1/webhooks".into(),
                Some("[1]"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_FIELD",
                Some("body"),
            ),
            (
                Method::POST,
                "/v1/webhooks".into(),
                Some("{}"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "MISSING_FIELD",
                Some("url"),
            ),
            (
                Method::POST,
                "/v1/webhooks".into(),
                Some(r#"{"url": 42}"#),
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_FIELD",
                Some("url"),
            ),
            (
                Method::POST,
                "/v1/webhooks".into(),
                Some(r#"{"url": "ftp://example.com/x"}"#),
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_FIELD",
                Some("url"),
            ),
            (
                Method::POST,
                "/v1/webhooks".into(),
                Some(r#"{"url": "/relative/path"}"#),
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_FIELD",
                Some("url"),
            ),
            (
                Method::POST,
                "/v1/webhooks".into(),
                Some(r#"{"url": "not a url"}"#),
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_FIELD",
                Some("url"),
            ),
            (
                Method::POST,
                "/v1/webhooks".into(),
                Some(r#"{"url": "https://example.com", "secret": "short"}"#),
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_FIELD",
                Some("secret"),
            ),
            (
                Method::POST,
                "/v1/webhooks".into(),
                Some(r#"{"url": "https://example.com", "uri": "x"}"#),
                StatusCode::UNPROCESSABLE_ENTITY,
                "UNKNOWN_FIELD",
                Some("uri"),
            ),
            (
                Method::POST,
                "/v1/webhooks".into(),
                Some(r#"{"url": "https://example.com", "filtering_attributes": ["msdyn_nope"]}"#),
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_FIELD",
                Some("filtering_attributes"),
            ),
            (
                Method::POST,
                "/v1/webhooks".into(),
                Some(
                    r#"{"url": "https://example.com", "filtering_attributes": "msdyn_currentpresenceid"}"#,
                ),
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_FIELD",
                Some("filtering_attributes"),
            ),
            (
                Method::GET,
                "/v1/webhooks/not-a-uuid".into(),
                None,
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                Some("id"),
            ),
            (
                Method::GET,
                format!("/v1/webhooks/{unknown}"),
                None,
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                Some("id"),
            ),
            (
                Method::DELETE,
                "/v1/webhooks/not-a-uuid".into(),
                None,
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                Some("id"),
            ),
            (
                Method::DELETE,
                format!("/v1/webhooks/{unknown}"),
                None,
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                Some("id"),
            ),
            (
                Method::GET,
                "/v1/webhooks/not-a-uuid/deliveries".into(),
                None,
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                Some("id"),
            ),
            (
                Method::GET,
                format!("/v1/webhooks/{unknown}/deliveries"),
                None,
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                Some("id"),
            ),
            (
                Method::GET,
                format!("/v1/webhooks/{known}/deliveries?limit=0"),
                None,
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                Some("limit"),
            ),
            (
                Method::GET,
                format!("/v1/webhooks/{known}/deliveries?limit=many"),
                None,
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                Some("limit"),
            ),
            (
                Method::GET,
                format!("/v1/webhooks/{known}/deliveries?before=-1"),
                None,
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                Some("before"),
            ),
            (
                Method::GET,
                format!("/v1/webhooks/{known}/deliveries?page=2"),
                None,
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                Some("page"),
            ),
        ];
        for (method, path, body, status, code, field) in cases {
            let (got, answer) = api.call(method.clone(), path, *body).await;
            let what = format!("{method} {path} {body:?}: {answer}");
            assert_eq!(got, *status, "{what}");
            assert_eq!(answer["status"], status.as_u16(), "{what}");
            assert_eq!(answer["code"], *code, "{what}");
            assert_eq!(answer["field"].as_str(), *field, "{what}");
            assert!(
                !answer["message"].as_str().unwrap_or_default().is_empty(),
                "{what}"
            );
        }
        let (_, listed) = api.call(Method::GET, "/v1/webhooks", None).await;
        assert_eq!(
            listed["webhooks"].as_array().map(Vec::len),
            Some(1),
            "nothing bad was registered"
        );

        live.stop().await;
    });
}

// --- delivery ----------------------------------------------------------------------------------

#[test]
fn a_presence_change_is_posted_signed_and_a_dead_or_hanging_receiver_delays_no_one() {
    block_on(async {
        // An attempt on the hanging receiver outlasts the test: were the live receiver's
        // deliveries behind it, they would not arrive in time.
        let (_dir, live, service) = started("webhooks-deliver", |config| {
            config.request_timeout = Duration::from_secs(600);
        })
        .await;
        let mut receiver = Receiver::start(0).await;
        let up = service.api.register(&receiver.url()).await;
        let dead = service.api.register(&dead_url().await).await;
        // Connections are queued by the kernel but never accepted: requests go unanswered.
        let hanging = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let hung = service
            .api
            .register(&format!(
                "http://{}/hook",
                hanging.local_addr().expect("addr")
            ))
            .await;

        // Signing in makes Ann Available; her change to Away follows.
        live.accepted(Actor::Agent(ANN), Command::SignIn { agent: ANN })
            .await;
        let away = set_presence(&live, ANN, PresenceId::AWAY).await;
        let received = receiver.next_about(ANN, PresenceId::AWAY).await;
        assert!(
            valid_signature(&received),
            "signed with the endpoint's secret"
        );
        assert_eq!(received.position(), away);
        let payload = received.payload();
        same_shape(
            &seed(),
            &serde_json::from_slice(&received.body).expect("JSON"),
            "$",
        );
        assert_eq!(attribute(&payload, "msdyn_isagentloggedin"), true);
        assert_eq!(attribute(&payload, "msdyn_presencemodifiedby"), "AGENT");
        assert_eq!(attribute(&payload, "msdyn_availableunitscapacity"), 3);
        assert_eq!(payload["OwningExtension"]["Id"], up);
        let delivery = received.header(DELIVERY_HEADER).to_owned();

        // The engine answers and the live receiver is served while the other one is down.
        for presence in [PresenceId::BUSY_DND, PresenceId::AVAILABLE] {
            set_presence(&live, ANN, presence).await;
            let received = receiver.next_about(ANN, presence).await;
            assert!(valid_signature(&received));
        }
        let logged = wait_for_delivery(&service.api, &up, away, "delivered", 1).await;
        assert_eq!(logged["delivery_id"], delivery);
        assert_eq!(logged["last_status"], 204);
        // The dead one keeps retrying its oldest change; the rest wait, none is lost.
        let waiting = service.api.deliveries(&dead).await;
        assert_eq!(
            waiting.len(),
            service.api.deliveries(&up).await.len(),
            "{waiting:?}"
        );
        assert!(
            waiting
                .iter()
                .all(|d| d["state"] == "pending" || d["state"] == "retrying"),
            "{waiting:?}"
        );
        let oldest = waiting.last().expect("the dead endpoint has deliveries");
        assert_eq!(oldest["state"], "retrying", "{oldest}");
        assert!(
            oldest["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{oldest}"
        );

        // Signing out is a status change too: logged out, Offline.
        live.accepted(Actor::Agent(BOB), Command::SignIn { agent: BOB })
            .await;
        live.accepted(Actor::Agent(BOB), Command::SignOut { agent: BOB })
            .await;
        let signed_out = receiver
            .next_where(|r| {
                r.agent() == BOB.0.to_string()
                    && attribute(&r.payload(), "msdyn_isagentloggedin") == false
            })
            .await;
        assert_eq!(signed_out.presence(), PresenceId::OFFLINE.0.to_string());

        let hung_log = service.api.deliveries(&hung).await;
        assert_eq!(hung_log.len(), service.api.deliveries(&up).await.len());
        assert!(
            hung_log.iter().all(|d| d["state"] == "pending"),
            "{hung_log:?}"
        );

        let metrics = service.webhooks.metrics();
        assert!(metrics.delivered.get() >= 5, "{metrics:?}");
        assert!(
            metrics.attempts.get() > metrics.delivered.get(),
            "the dead one's attempts count"
        );
        assert!(
            metrics
                .render()
                .contains("omni_webhook_deliveries_delivered_total ")
        );

        service.stop().await;
        drop(hanging);
        live.stop().await;
    });
}

#[test]
fn a_receiver_that_was_down_gets_every_change_in_order_after_retries() {
    block_on(async {
        let (_dir, live, service) = started("webhooks-retry", |_| {}).await;
        let port = dead_port().await;
        let id = service
            .api
            .register(&format!("http://127.0.0.1:{port}/hook"))
            .await;

        let signed_in = live
            .accepted(Actor::Agent(ANN), Command::SignIn { agent: ANN })
            .await;
        let Outcome::Accepted { events, .. } = signed_in else {
            unreachable!("accepted")
        };
        let oldest = events[0].position;
        let away = set_presence(&live, ANN, PresenceId::AWAY).await;
        let dnd = set_presence(&live, ANN, PresenceId::BUSY_DND).await;
        // The oldest is retried while the receiver is down; the others wait their turn.
        wait_for_delivery(&service.api, &id, oldest, "retrying", 3).await;

        let mut receiver = Receiver::start(port).await;
        let first = receiver.next().await;
        assert_eq!(first.position(), oldest);
        assert!(
            first
                .header(omni_webhooks::ATTEMPT_HEADER)
                .parse::<u32>()
                .expect("a number")
                >= 3
        );
        assert!(valid_signature(&first));
        let mut positions = vec![first.position()];
        while positions.last() != Some(&dnd) {
            positions.push(receiver.next().await.position());
        }
        assert!(
            positions.is_sorted() && positions.contains(&away),
            "in log order: {positions:?}"
        );
        let logged = wait_for_delivery(&service.api, &id, oldest, "delivered", 3).await;
        assert_eq!(logged["delivery_id"], first.header(DELIVERY_HEADER));
        wait_for_delivery(&service.api, &id, dnd, "delivered", 1).await;

        service.stop().await;
        receiver.stop().await;
        live.stop().await;
    });
}

#[test]
fn a_restart_resumes_without_losing_or_resending_notifications() {
    block_on(async {
        let dir = TempDir::new("webhooks-restart");
        let config = test_config(&dir.path().join("webhooks"));
        let live = Live::standard("webhooks-restart", 1).await;
        let service = Service::start(config.clone(), &live).await;
        let mut receiver = Receiver::start(0).await;
        let id = service.api.register(&receiver.url()).await;

        live.accepted(Actor::Agent(ANN), Command::SignIn { agent: ANN })
            .await;
        let away = set_presence(&live, ANN, PresenceId::AWAY).await;
        receiver.next_about(ANN, PresenceId::AWAY).await;
        wait_for_delivery(&service.api, &id, away, "delivered", 1).await;

        // The receiver goes down with a change pending; then the service stops, and another
        // change is committed while nothing follows the log.
        let port = receiver.stop().await;
        let dnd = set_presence(&live, ANN, PresenceId::BUSY_DND).await;
        wait_for_delivery(&service.api, &id, dnd, "retrying", 1).await;
        let shown = service.api.show(&id).await;
        assert_eq!(shown["pending"], 1, "{shown}");
        service.stop().await;
        let available = set_presence(&live, ANN, PresenceId::AVAILABLE).await;

        let mut receiver = Receiver::start(port).await;
        let service = Service::start(config, &live).await;
        let mut positions = BTreeSet::new();
        while !positions.contains(&available) {
            let received = receiver.next().await;
            assert!(valid_signature(&received));
            assert!(
                positions.insert(received.position()),
                "nothing twice: {}",
                received.position()
            );
        }
        assert_eq!(
            positions,
            BTreeSet::from([dnd, available]),
            "what was not delivered, and only that"
        );
        wait_for_delivery(&service.api, &id, available, "delivered", 1).await;
        // The queue's count was read back from the database and counted down.
        let shown = service.api.show(&id).await;
        assert_eq!(shown["pending"], 0, "{shown}");

        service.stop().await;
        receiver.stop().await;
        live.stop().await;
    });
}

/// The delivery log of `id`, oldest first, as (position, state).
async fn states(api: &Api, id: &str) -> Vec<(u64, String)> {
    let mut log: Vec<(u64, String)> = api
        .deliveries(id)
        .await
        .iter()
        .map(|d| {
            (
                d["position"].as_u64().expect("a position"),
                d["state"].as_str().expect("a state").to_owned(),
            )
        })
        .collect();
    log.reverse();
    log
}

#[test]
fn a_delivery_is_given_up_after_its_last_attempt() {
    block_on(async {
        let (_dir, live, service) =
            started("webhooks-failed", |config| config.retry.max_attempts = 3).await;
        let id = service.api.register(&dead_url().await).await;

        let away = live
            .accepted(Actor::Agent(ANN), Command::SignIn { agent: ANN })
            .await
            .last_position()
            .expect("events");
        let failed = wait_for_delivery(&service.api, &id, away, "failed", 3).await;
        assert_eq!(failed["attempts"], 3, "{failed}");
        assert!(failed["next_attempt_at"].is_null());
        assert!(failed["last_error"].as_str().is_some_and(|e| !e.is_empty()));
        let log = states(&service.api, &id).await;
        assert!(log.iter().all(|(_, state)| state == "failed"), "{log:?}");
        let shown = service.api.show(&id).await;
        assert_eq!(shown["pending"], 0);

        service.stop().await;
        live.stop().await;
    });
}

#[test]
fn a_full_queue_drops_its_oldest_waiting_delivery() {
    block_on(async {
        let (_dir, live, service) = started("webhooks-full", |config| config.max_pending = 2).await;
        let id = service.api.register(&dead_url().await).await;

        live.accepted(Actor::Agent(ANN), Command::SignIn { agent: ANN })
            .await;
        for presence in [
            PresenceId::AWAY,
            PresenceId::BUSY_DND,
            PresenceId::AVAILABLE,
        ] {
            set_presence(&live, ANN, presence).await;
        }
        let available = wait_until_logged(&service.api, &id, 5).await;
        let log = states(&service.api, &id).await;
        let (dropped, kept) = log.split_at(3);
        assert!(dropped.iter().all(|(_, s)| s == "dropped"), "{log:?}");
        assert!(
            kept.iter().all(|(_, s)| s == "pending" || s == "retrying"),
            "{log:?}"
        );
        assert_eq!(
            kept.last().map(|(p, _)| *p),
            Some(available),
            "the newest is kept"
        );
        let shown = service.api.show(&id).await;
        assert_eq!(shown["pending"], 2);

        // The log pages newest first.
        let mut paged = Vec::new();
        let mut before: Option<u64> = None;
        loop {
            let query = before.map_or(String::new(), |b| format!("&before={b}"));
            let (status, page) = service
                .api
                .call(
                    Method::GET,
                    &format!("/v1/webhooks/{id}/deliveries?limit=2{query}"),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let records = page["deliveries"].as_array().expect("a list");
            assert!(records.len() <= 2);
            paged.extend(
                records
                    .iter()
                    .map(|d| d["position"].as_u64().expect("a position")),
            );
            match page["next_before"].as_u64() {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        let mut newest_first: Vec<u64> = log.iter().map(|(p, _)| *p).collect();
        newest_first.reverse();
        assert_eq!(paged, newest_first);

        service.stop().await;
        live.stop().await;
    });
}

/// Waits until the delivery log of `id` has `count` records; returns the newest's position.
async fn wait_until_logged(api: &Api, id: &str, count: usize) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = api.deliveries(id).await;
        if log.len() >= count {
            return log[0]["position"].as_u64().expect("a position");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} deliveries logged: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn an_endpoint_with_filtering_attributes_hears_only_of_those() {
    block_on(async {
        let (_dir, live, service) = started("webhooks-filter", |_| {}).await;
        let mut everything = Receiver::start(0).await;
        service.api.register(&everything.url()).await;
        let mut presence_only = Receiver::start(0).await;
        let body = json!({
            "url": presence_only.url(),
            "secret": SECRET,
            "filtering_attributes": ["msdyn_currentpresenceid"],
        });
        let (status, created) = service
            .api
            .call(Method::POST, "/v1/webhooks", Some(&body.to_string()))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(
            created["filtering_attributes"],
            json!(["msdyn_currentpresenceid"])
        );

        // Signing in is two changes (logged in, then Available); a capacity change keeps Ann
        // Available; then she goes Away.
        let signed_in = live
            .accepted(Actor::Agent(ANN), Command::SignIn { agent: ANN })
            .await;
        let Outcome::Accepted { events, .. } = signed_in else {
            unreachable!("accepted")
        };
        let capacity = live
            .accepted(
                Actor::System,
                Command::SetAgentCapacity {
                    agent: ANN,
                    capacity_units: 5,
                },
            )
            .await
            .last_position()
            .expect("an event");
        let away = set_presence(&live, ANN, PresenceId::AWAY).await;

        let mut all = Vec::new();
        while all.last() != Some(&away) {
            all.push(everything.next().await.position());
        }
        assert!(
            all.contains(&events[0].position) && all.contains(&capacity),
            "{all:?}"
        );
        let mut filtered = Vec::new();
        while filtered.last() != Some(&away) {
            filtered.push(presence_only.next().await.position());
        }
        assert_eq!(
            filtered,
            [events[1].position, away],
            "presence changes only"
        );

        service.stop().await;
        live.stop().await;
    });
}
