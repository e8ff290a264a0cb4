//! The supervisor dashboard (omni-dashboard) on a live engine: its JSON state and its event
//! stream read by a real HTTP client, and its page in headless Chromium, which must show a new
//! conversation within a second. The page's screenshot is kept as a test artifact:
//! `$OMNI_TEST_ARTIFACTS/dashboard.png`, by default `target/test-artifacts/dashboard.png` in
//! the workspace.
//!
//! The dashboard is served by the engine's own HTTP gateway, whose auth accepts the token as an
//! `access_token` query parameter: the page must pass its own token on to its stream.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use fantoccini::{ClientBuilder, Locator};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use omni_core::{
    Actor, AgentId, AgentProfile, AssignmentMethod, Channel, Command, ConversationId,
    DEFAULT_MAX_SESSIONS, EventKind, PresenceId, QueueConfig, QueueId, Workstream, WorkstreamId,
};
use omni_proto::Outcome;
use serde_json::Value;

use crate::live::{Live, block_on};
use crate::support::{TempDir, conversation, start_in as start};

const TOKEN: &str = "supervisor-token";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

const CHAT: QueueId = QueueId::from_u128(0xD1);
const VOICE: QueueId = QueueId::from_u128(0xD2);
const SMS: QueueId = QueueId::from_u128(0xD3);
const QUEUES: [(QueueId, Channel, &str); 3] = [
    (CHAT, Channel::LiveChat, "Chat support"),
    (VOICE, Channel::Voice, "Voice sales"),
    (SMS, Channel::Sms, "SMS billing"),
];
const AGENTS: [&str; 10] = [
    "Ann Lee",
    "Bob Martin",
    "Chloé Dubois",
    "Dev Patel",
    "Eva Novak",
    "Femi Adeyemi",
    "Grace Kim",
    "Hugo Silva",
    "Ines García",
    "Jonas Berg",
];

fn agent(n: usize) -> AgentId {
    AgentId::from_u128(0xDA00 + n as u128)
}

/// Three queues and ten agents in all of them; eight sign in, one of those goes Away and one
/// Busy-DND, two never sign in. Returns the last position written.
async fn provision(live: &Live) -> u64 {
    let mut position = 0;
    for (queue, channel, name) in QUEUES {
        let workstream = WorkstreamId(queue.0);
        live.accepted(
            Actor::System,
            Command::ConfigureWorkstream(Workstream::with_defaults(workstream, name, channel)),
        )
        .await;
        live.accepted(
            Actor::System,
            Command::ConfigureQueue(QueueConfig {
                id: queue,
                name: name.to_owned(),
                workstream,
                method: AssignmentMethod::AdvancedRoundRobin,
            }),
        )
        .await;
    }
    for (n, name) in AGENTS.iter().enumerate() {
        let id = agent(n);
        let profile = AgentProfile {
            id,
            name: (*name).to_owned(),
            capacity_units: 2 + (n as u32 % 3),
            skills: Default::default(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            default_presence: PresenceId::AVAILABLE,
        };
        live.accepted(Actor::System, Command::ProvisionAgent(profile))
            .await;
        for (queue, _, _) in QUEUES {
            live.accepted(Actor::System, Command::AddAgentToQueue { queue, agent: id })
                .await;
        }
        if n < 8 {
            live.accepted(Actor::Agent(id), Command::SignIn { agent: id })
                .await;
        }
    }
    for (n, presence) in [(6, PresenceId::AWAY), (7, PresenceId::BUSY_DND)] {
        let id = agent(n);
        let outcome = live
            .accepted(
                Actor::Agent(id),
                Command::SetPresence {
                    agent: id,
                    presence,
                },
            )
            .await;
        position = last_position(&outcome);
    }
    position
}

/// The engine with its HTTP gateway on a free local port, serving the dashboard behind the
/// gateway's tokens, once the dashboard has folded the provisioned center.
struct Served {
    live: Live,
    addr: SocketAddr,
}

impl Served {
    async fn start(name: &str) -> Served {
        let live = Live::start_with(name, |config| {
            config.http_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
            config.api_tokens = vec![TOKEN.to_owned()];
        })
        .await;
        let provisioned = provision(&live).await;
        let addr = live.engine.http_addr.expect("the engine serves HTTP");
        let served = Served { live, addr };
        let (status, _, body) =
            get(&served.url(&format!("/dashboard/state?min_position={provisioned}"))).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the dashboard folds the log: {body}"
        );
        served
    }

    fn url(&self, path: &str) -> String {
        let separator = if path.contains('?') { '&' } else { '?' };
        format!("http://{}{path}{separator}access_token={TOKEN}", self.addr)
    }

    /// Open dashboard streams must end at shutdown, or the gateway would never stop.
    async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(15), self.live.stop())
            .await
            .expect("open dashboard streams end at shutdown");
    }
}

fn http() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A GET's status, content type and body.
async fn get(url: &str) -> (StatusCode, String, String) {
    let response = http()
        .get(url.parse().expect("a URL"))
        .await
        .expect("the dashboard answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a whole body")
        .to_bytes();
    let body = String::from_utf8(body.to_vec()).expect("a UTF-8 body");
    (status, content_type, body)
}

/// A server-sent event stream read as it arrives.
struct EventStream {
    body: hyper::body::Incoming,
    buffer: String,
}

impl EventStream {
    async fn open(url: &str) -> EventStream {
        let response = http()
            .get(url.parse().expect("a URL"))
            .await
            .expect("the stream answers");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"text/event-stream"[..])
        );
        EventStream {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event's name and JSON data, skipping keep-alive comments.
    async fn next(&mut self, within: Duration) -> (String, Value) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.strip_prefix(' ').unwrap_or(value));
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return (name, serde_json::from_str(&data).expect("JSON data"));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("no event within {within:?}"))
                .expect("the stream is open")
                .expect("a frame");
            if let Ok(data) = frame.into_data() {
                self.buffer
                    .push_str(std::str::from_utf8(&data).expect("UTF-8 events"));
            }
        }
    }
}

/// The row of `conversation` among an update's conversations, if there.
fn row_of(update: &Value, conversation: ConversationId) -> Option<&Value> {
    let id = conversation.0.to_string();
    update["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .find(|row| row["id"] == id.as_str())
}

fn last_position(outcome: &Outcome) -> u64 {
    match outcome {
        Outcome::Accepted { events, .. } => events.last().expect("an event").position,
        other => panic!("not accepted: {other:?}"),
    }
}

#[test]
fn state_and_stream_show_a_new_conversation() {
    block_on(async {
        let served = Served::start("dashboard-http").await;

        let (status, content_type, page) = get(&served.url("/dashboard")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/html"), "{content_type}");
        assert!(
            page.contains("access_token"),
            "the page passes its token on"
        );
        assert!(
            !page.contains("http://") && !page.contains("https://") && !page.contains("src="),
            "the page loads nothing from elsewhere"
        );
        let (status, _, _) = get(&format!("http://{}/dashboard/state", served.addr)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "served behind auth");

        let mut stream = EventStream::open(&served.url("/dashboard/stream")).await;
        let (name, snapshot) = stream.next(Duration::from_secs(5)).await;
        assert_eq!(name, "snapshot");
        assert_eq!(snapshot["kind"], "snapshot");
        assert_eq!(snapshot["queues"].as_array().expect("queues").len(), 3);
        assert_eq!(snapshot["agents"].as_array().expect("agents").len(), 10);
        assert!(
            snapshot["conversations"]
                .as_array()
                .expect("rows")
                .is_empty()
        );

        let outcome = served.live.accepted(Actor::Customer, start(1, CHAT)).await;
        let position = last_position(&outcome);
        let row = loop {
            let (name, update) = stream.next(Duration::from_secs(5)).await;
            assert!(
                name == "delta" || name == "snapshot",
                "an unknown event {name}"
            );
            assert_eq!(update["kind"], name.as_str());
            if let Some(row) = row_of(&update, conversation(1)) {
                break row.clone();
            }
        };
        assert_eq!(row["queue"], CHAT.0.to_string().as_str());
        assert_eq!(row["channel"], "Live chat");
        assert!(
            [1, 2].contains(&row["status"].as_i64().expect("a status code")),
            "Open or already Active: {row}"
        );

        let (status, content_type, body) =
            get(&served.url(&format!("/dashboard/state?min_position={position}"))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "application/json");
        let state: Value = serde_json::from_str(&body).expect("JSON state");
        assert_eq!(state["kind"], "snapshot");
        assert!(state["position"].as_u64().expect("a position") >= position);
        assert!(row_of(&state, conversation(1)).is_some(), "{state}");
        let names: Vec<&str> = state["queues"]
            .as_array()
            .expect("queues")
            .iter()
            .map(|q| q["name"].as_str().expect("a name"))
            .collect();
        assert_eq!(names, ["Chat support", "SMS billing", "Voice sales"]);
        let chat = &state["queues"][0];
        assert_eq!(chat["members"], 10);
        assert_eq!(chat["members_signed_in"], 8);
        assert_eq!(state["agents_total"], 10);
        assert_eq!(state["agents_signed_in"], 8);
        let presence = |name: &str| {
            state["presences"]
                .as_array()
                .expect("presences")
                .iter()
                .find(|p| p["name"] == name)
                .expect("a presence count")["count"]
                .clone()
        };
        assert_eq!(presence("Away"), 1);
        assert_eq!(presence("Busy - DND"), 1);
        let open_or_active: i64 = state["statuses"]
            .as_array()
            .expect("statuses")
            .iter()
            .filter(|s| s["code"] == 1 || s["code"] == 2)
            .map(|s| s["count"].as_i64().expect("a count"))
            .sum();
        assert_eq!(open_or_active, 1);

        // A position the log has not reached: asked again later, not answered stale.
        let (status, _, body) = get(&served.url(&format!(
            "/dashboard/state?min_position={}",
            position + 1_000
        )))
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let error: Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(error["code"], "NOT_READY", "{body}");

        // Bad input: a position that is not a number is named, as JSON, never a 500.
        let (status, _, body) = get(&served.url("/dashboard/state?min_position=soon")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let error: Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(error["field"], "min_position", "{body}");

        served.stop().await;
    });
}

/// Where test artifacts go: `$OMNI_TEST_ARTIFACTS`, or `target/test-artifacts` in the
/// workspace.
fn artifacts() -> PathBuf {
    let dir = std::env::var_os("OMNI_TEST_ARTIFACTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).expect("the artifacts directory");
    dir
}

/// A chromedriver child on a free port, driving a headless Chromium with its own profile.
struct Browser {
    client: fantoccini::Client,
    _driver: tokio::process::Child,
    _profile: TempDir,
}

impl Browser {
    async fn start() -> Browser {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: install Debian's browser with `apt-get install -y chromium chromium-driver` (.ci/run does)"
            );
        }
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("an address").port()
        };
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver does not listen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = TempDir::new("chromium-profile");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1440,1200",
                    format!("--user-data-dir={}", profile.arg()),
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Whether a script's result is `true`.
    async fn holds(&self, script: &str) -> bool {
        self.client
            .execute(script, Vec::new())
            .await
            .expect("the script runs")
            == Value::Bool(true)
    }
}

#[test]
fn the_page_shows_a_new_conversation_within_a_second() {
    block_on(async {
        let served = Served::start("dashboard-browser").await;
        let browser = Browser::start().await;
        browser
            .client
            .goto(&served.url("/dashboard"))
            .await
            .expect("the page loads");
        // Live once the stream (which needs the token) has delivered its snapshot.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !browser
            .holds("return document.getElementById('connection').className === 'live'")
            .await
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page never went live: its stream is refused or silent"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let selector = format!("#conversations tr[data-id='{}']", conversation(1).0);
        // The second runs from the engine's answer: the conversation is committed then, and
        // what follows (the bus, the dashboard's fold and flush, the stream, the page) is the
        // dashboard's latency, whatever the load on the engine the tests share.
        served.live.accepted(Actor::Customer, start(1, CHAT)).await;
        let started = tokio::time::Instant::now();
        loop {
            if browser.client.find(Locator::Css(&selector)).await.is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "the conversation is not on the page a second after it was committed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let row = browser
            .client
            .find(Locator::Css(&selector))
            .await
            .expect("the row");
        let text = row.text().await.expect("the row's text");
        assert!(text.contains("Chat support"), "{text}");
        assert!(text.contains("Live chat"), "{text}");

        busy_afternoon(&served.live).await;
        // Two flushes, then the page has drawn.
        tokio::time::sleep(omni_dashboard::FLUSH_EVERY * 3).await;
        let shown = browser
            .client
            .find_all(Locator::Css("#conversations tr"))
            .await
            .expect("rows");
        assert_eq!(shown.len(), 10, "every live conversation is listed");
        assert!(
            browser
                .holds("return document.querySelectorAll('#agents tr').length === 10")
                .await
        );
        let png = browser.client.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = artifacts().join("dashboard.png");
        std::fs::write(&path, png).expect("the screenshot is saved");
        eprintln!("dashboard screenshot: {}", path.display());

        browser.client.close().await.expect("the session closes");
        served.stop().await;
    });
}

/// Nine more conversations across the queues; some offers accepted, one ended into wrap-up.
async fn busy_afternoon(live: &Live) {
    let mut offers = live
        .events("omni.events.*.*.*.IncomingSessionRequest")
        .await;
    let queues = [CHAT, VOICE, SMS];
    for n in 2..=10 {
        live.accepted(Actor::Customer, start(n, queues[n as usize % 3]))
            .await;
    }
    for accepted in 0..6 {
        let (_, offer) = offers
            .next("IncomingSessionRequest", Duration::from_secs(5))
            .await;
        let EventKind::IncomingSessionRequest { session, agent, .. } = offer.event.kind else {
            panic!("not an offer");
        };
        live.accepted(Actor::Agent(agent), Command::Accept { agent, session })
            .await;
        if accepted == 0 {
            live.accepted(
                Actor::Agent(agent),
                Command::End {
                    agent,
                    conversation: session.conversation,
                },
            )
            .await;
        }
    }
}
