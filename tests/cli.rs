//! The `omni` command end to end, on real logs in temporary directories.

use std::path::{Path, PathBuf};

use crate::support::TempDir;
use std::process::{Command, Output};
use std::sync::OnceLock;

use omni_store::{EventLog, ExpectedVersion, NewEvent, SledLog};
use prost::Message;
use serde_json::Value;

/// The `omni` binary, built once if the workspace build has not built it yet.
fn omni_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary has a path");
        let target = exe
            .parent()
            .and_then(Path::parent)
            .expect("tests run from target/<profile>/deps");
        let binary = target.join("omni");
        if !binary.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--package", "omni-cli", "--bin", "omni"])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building omni failed");
        }
        binary
    })
}

fn omni(args: &[&str]) -> Output {
    Command::new(omni_binary())
        .args(args)
        .output()
        .expect("omni runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A seeded log: 40 conversations with 8 agents.
fn seeded(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    let out = omni(&[
        "log",
        "seed",
        "--data",
        dir.arg(),
        "--conversations",
        "40",
        "--agents",
        "8",
        "--seed",
        "7",
    ]);
    assert!(out.status.success(), "seed failed: {}", stderr(&out));
    dir
}

fn replay_json(dir: &TempDir, extra: &[&str]) -> (Output, Option<Value>) {
    let mut args = vec!["replay", "--data", dir.arg(), "--json"];
    args.extend_from_slice(extra);
    let out = omni(&args);
    let json = serde_json::from_slice(&out.stdout).ok();
    (out, json)
}

/// What must not change when nothing was changed: everything but the timing.
fn contents(summary: &Value) -> Value {
    let mut summary = summary["summary"].clone();
    let map = summary.as_object_mut().expect("summary object");
    map.remove("elapsed_ms");
    map.remove("events_per_sec");
    summary
}

#[test]
fn replay_verify_succeeds_on_a_seeded_log() {
    let dir = seeded("verify");
    let out = omni(&["replay", "--data", dir.arg(), "--verify"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("equals the stored snapshot"));
    let (out, json) = replay_json(&dir, &[]);
    assert!(out.status.success());
    let json = json.expect("json summary");
    assert_eq!(json["summary"]["conversations"], 40);
    assert_eq!(json["summary"]["unknown_events"], 0);
}

#[test]
fn a_missing_data_directory_is_one_clear_line() {
    let out = omni(&["replay", "--data", "/nonexistent/omni-data"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no event log at /nonexistent/omni-data/log"),
        "{err}"
    );
}

#[test]
fn time_travel_shows_the_state_as_it_was() {
    let dir = seeded("until");
    let (_, full) = replay_json(&dir, &[]);
    let full = full.expect("json");
    let head = full["summary"]["position"].as_u64().unwrap();
    let half = (head / 2).to_string();
    let (out, past) = replay_json(&dir, &["--until", &half]);
    assert!(out.status.success(), "{}", stderr(&out));
    let past = past.expect("json");
    assert_eq!(past["summary"]["position"].as_u64(), Some(head / 2));
    assert_ne!(contents(&past), contents(&full));

    let (out, before_everything) = replay_json(&dir, &["--until", "1970-01-02T00:00:00Z"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(before_everything.unwrap()["summary"]["events"], 0);

    let out = omni(&["replay", "--data", dir.arg(), "--until", "yesterday-ish"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is neither a log position nor an RFC 3339 time"));
}

#[test]
fn a_flipped_byte_in_a_stored_record_fails_replay_naming_its_position() {
    let dir = seeded("flip");
    let log_dir = dir.path().join("log");
    {
        let db = sled::open(&log_dir).expect("the log is a sled database");
        let events = db.open_tree("events").expect("events tree");
        let (key, value) = events
            .iter()
            .nth(3)
            .expect("a few chunks")
            .expect("readable");
        let mut damaged = value.to_vec();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x20;
        events.insert(key, damaged).expect("rewrite");
        db.flush().expect("flush");
    }
    for args in [
        vec!["replay", "--data", dir.arg()],
        vec!["replay", "--data", dir.arg(), "--verify"],
        vec!["log", "stats", "--data", dir.arg()],
    ] {
        let out = omni(&args);
        assert!(!out.status.success(), "{args:?} succeeded on a damaged log");
        let err = stderr(&out);
        assert!(err.contains("position"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn flipping_bytes_in_the_data_files_never_passes_for_the_same_log() {
    let original = seeded("outside");
    let (_, reference) = replay_json(&original, &[]);
    let reference = contents(&reference.expect("json"));
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for trial in 0..12 {
        let copy = TempDir::new(&format!("outside-{trial}"));
        copy_dir(original.path(), copy.path());
        let db_file = copy.path().join("log").join("db");
        let mut bytes = std::fs::read(&db_file).expect("sled's db file");
        for _ in 0..4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] ^= 1 << (next() % 8);
        }
        std::fs::write(&db_file, &bytes).expect("write back");
        let (out, json) = replay_json(&copy, &[]);
        if out.status.success() {
            assert_eq!(
                contents(&json.expect("json on success")),
                reference,
                "trial {trial}: replay succeeded with different contents"
            );
        } else {
            assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        }
    }
}

#[test]
fn events_from_a_newer_schema_are_counted_reported_and_left_alone() {
    let dir = seeded("newer");
    let log_dir = dir.path().join("log");
    let newer = omni_proto::pb::EventEnvelope {
        event_id: omni_proto::uuid_to_bytes(uuid::Uuid::now_v7()).into(),
        stream_id: "conversation-future".into(),
        occurred_at: 1,
        correlation_id: omni_proto::uuid_to_bytes(uuid::Uuid::now_v7()).into(),
        actor: Some(omni_proto::pb::Actor {
            kind: Some(omni_proto::pb::actor::Kind::System(
                omni_proto::pb::actor::System {},
            )),
        }),
        ..Default::default()
    };
    let mut bytes = newer.encode_to_vec();
    // Field 999, length-delimited and empty: an event member this version does not know.
    bytes.extend_from_slice(&[0xBA, 0x3E, 0x00]);
    {
        let log = SledLog::open(&log_dir).expect("open");
        log.append(
            "conversation-future",
            ExpectedVersion::Any,
            vec![NewEvent::new(uuid::Uuid::now_v7(), bytes)],
        )
        .expect("append");
        log.close().expect("close");
    }
    let (out, json) = replay_json(&dir, &[]);
    assert!(!out.status.success());
    assert_eq!(
        json.expect("summary still printed")["summary"]["unknown_events"],
        1
    );
    assert!(
        stderr(&out).contains("1 event(s) from a newer schema"),
        "{}",
        stderr(&out)
    );
    let stats = omni(&["log", "stats", "--data", dir.arg(), "--json"]);
    let stats: Value = serde_json::from_slice(&stats.stdout).expect("stats json");
    assert_eq!(stats["unknown_events"], 1);
}

#[test]
fn log_show_and_tail_print_events_as_json() {
    let dir = seeded("show");
    let out = omni(&["log", "show", "--data", dir.arg(), "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let event: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(event["position"], 1);
    assert!(event["kind"].is_string());
    let out = omni(&["log", "tail", "--data", dir.arg(), "-n", "3"]);
    assert_eq!(stdout(&out).lines().count(), 3);
    let out = omni(&["log", "show", "--data", dir.arg(), "999999"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("position 999999 is not in the log"));
}

/// A reader that stops early (`omni log tail | head -1`) ends omni quietly, not in a panic.
#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    use std::io::{BufRead, BufReader};
    let dir = seeded("broken-pipe");
    let mut child = Command::new(omni_binary())
        .args(["log", "tail", "--data", dir.arg(), "-n", "100000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("omni runs");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut first)
        .expect("one line");
    assert!(first.starts_with('{'), "{first}");
    let out = child.wait_with_output().expect("omni ends");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
