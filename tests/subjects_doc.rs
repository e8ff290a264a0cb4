//! `docs/subjects.md` is the public contract on the bus; these tests keep it from drifting
//! from the code: every intake command, every subject, header and notification the code
//! defines, every event kind and every rejection code must be on the page. Constants are read
//! from the source files themselves, so a new one fails here until it is documented.

use std::path::PathBuf;

use omni_bus::{headers, notify, subjects};
use omni_core::{AgentId, ConversationId, QueueId};

fn repo_file(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()))
}

fn doc() -> String {
    repo_file("docs/subjects.md")
}

/// The values of every `pub const NAME: &str = "value";` of a source file.
fn str_consts(source: &str) -> Vec<(String, String)> {
    source
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("pub const ")?;
            let (name, rest) = rest.split_once(": &str = \"")?;
            let (value, _) = rest.split_once("\";")?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

fn assert_documented(what: &str, values: impl IntoIterator<Item = String>) {
    let doc = doc();
    let missing: Vec<String> = values
        .into_iter()
        .filter(|value| !doc.contains(value.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/subjects.md does not mention these {what}: {missing:?}"
    );
}

#[test]
fn the_subjects_doc_names_every_intake_command_with_its_subject() {
    assert_documented(
        "intake subjects",
        omni_proto::COMMAND_NAMES
            .iter()
            .map(|name| format!("`{}`", subjects::intake(name))),
    );
}

#[test]
fn the_subjects_doc_names_every_subject_constant() {
    let consts = str_consts(&repo_file("crates/omni-bus/src/subjects.rs"));
    assert!(consts.len() >= 17, "found only {consts:?}");
    // The constants as compiled, too: a renamed one breaks the build here.
    for value in [
        subjects::INTAKE_PREFIX,
        subjects::INTAKE_ALL,
        subjects::EVENTS_PREFIX,
        subjects::EVENTS_ALL,
        subjects::DESKTOP_PREFIX,
        subjects::DESKTOP_ALL,
        subjects::QUERY_CONVERSATION,
        subjects::QUERY_CONVERSATIONS,
        subjects::QUERY_AGENT,
        subjects::QUERY_AGENTS,
        subjects::QUERY_QUEUES,
        subjects::PRESENCE_GET,
        subjects::PRESENCE_MODIFY,
        subjects::LOG_READ,
        subjects::DEAD_PREFIX,
        subjects::DEAD_ALL,
        subjects::DEAD_LETTER_STREAM,
    ] {
        assert!(
            consts.iter().any(|(_, v)| v == value),
            "{value} is not a `pub const` of subjects.rs"
        );
    }
    assert_documented(
        "subject constants",
        consts.into_iter().map(|(_, value)| format!("`{value}`")),
    );
}

#[test]
fn the_subjects_doc_shows_every_subject_family_as_the_code_builds_it() {
    // Build each subject with recognisable ids and write the ids as the doc's placeholders.
    let queue = QueueId::from_u128(0x0001);
    let conversation = ConversationId::from_u128(0x0002);
    let agent = AgentId::from_u128(0x0003);
    let placeholders = |subject: String| {
        subject
            .replace(&queue.0.hyphenated().to_string(), "<queue>")
            .replace(&conversation.0.hyphenated().to_string(), "<conversation>")
            .replace(&agent.0.hyphenated().to_string(), "<agent>")
    };
    let families = [
        subjects::intake("<command>"),
        placeholders(subjects::event(
            Some(queue),
            Some(conversation),
            Some(agent),
            "<EventName>",
        )),
        placeholders(subjects::events_of_conversation(conversation)),
        placeholders(subjects::events_of_agent(agent)),
        placeholders(subjects::events_of_queue(queue)),
        placeholders(subjects::desktop(agent, "<notification>")),
        placeholders(subjects::desktop_of(agent)),
        subjects::dead_letter("<service>"),
    ];
    assert_documented(
        "subject families",
        families.into_iter().map(|family| format!("`{family}`")),
    );
    // "None" is `_`, as the doc says.
    assert_eq!(
        subjects::event(None, None, None, "WorkstreamConfigured"),
        "omni.events._._._.WorkstreamConfigured"
    );
    assert!(doc().contains("`_._._`"));
}

#[test]
fn the_subjects_doc_names_every_desktop_notification() {
    let consts = str_consts(&repo_file("crates/omni-bus/src/notify.rs"));
    for value in [
        notify::INCOMING_SESSION_REQUEST,
        notify::SESSION_ACCEPTED,
        notify::TRANSFER_INITIATED,
        notify::UNREAD_MESSAGE,
        notify::PRESENCE_UPDATE,
        notify::END_CONVERSATION,
        notify::OFFER_CLOSED,
        notify::CONSULT_STARTED,
        notify::CONSULT_ENDED,
        notify::SESSION_CLOSED,
        notify::CONVERSATION_CLOSED,
    ] {
        assert!(
            consts.iter().any(|(_, v)| v == value),
            "{value} is not a `pub const` of notify.rs"
        );
    }
    assert_documented(
        "desktop notifications",
        consts
            .into_iter()
            .map(|(_, value)| format!("| `{value}` |")),
    );
}

#[test]
fn the_subjects_doc_names_every_header() {
    let consts = str_consts(&repo_file("crates/omni-bus/src/headers.rs"));
    for value in [
        headers::POSITION,
        headers::STREAM,
        headers::STREAM_VERSION,
        headers::MSG_ID,
        headers::DEAD_REASON,
        headers::DEAD_SUBJECT,
    ] {
        assert!(consts.iter().any(|(_, v)| v == value), "{value}");
    }
    assert_documented(
        "headers",
        consts
            .into_iter()
            .map(|(_, value)| format!("| `{value}` |")),
    );
}

#[test]
fn the_subjects_doc_places_every_event_kind() {
    // Every name `EventKind::name` gives, read from its match arms.
    let source = repo_file("crates/omni-core/src/event.rs");
    let (_, body) = source
        .split_once("pub fn name(&self)")
        .expect("EventKind::name");
    let names: Vec<String> = body
        .lines()
        .filter_map(|line| line.split_once("=> \"")?.1.split_once('"'))
        .map(|(name, _)| name.to_owned())
        .collect();
    assert!(names.len() >= 38, "found only {names:?}");
    assert_documented("event kinds", names.into_iter().map(|n| format!("`{n}`")));
}

#[test]
fn the_subjects_doc_lists_every_rejection_code() {
    let proto = repo_file("proto/omnichannel/v1/codes.proto")
        + &repo_file("proto/omnichannel/v1/intake.proto");
    let codes: Vec<String> = proto
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let (name, value) = line.strip_suffix(';')?.split_once(" = ")?;
            name.starts_with("REJECTION_CODE_")
                .then(|| format!("| `{name}` | {value} |"))
        })
        .collect();
    assert!(codes.len() >= 40, "found only {codes:?}");
    assert_documented("rejection codes (with their values)", codes);
}
