//! Compiles `proto/omnichannel/v1/*.proto` into Rust with protox (a pure-Rust protobuf
//! compiler) and prost-build, so building needs no `protoc` on the machine.

use std::error::Error;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    // Read at run time: a build script binary can be reused for a checkout in another place.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = Path::new(&manifest_dir).join("../../proto");
    // Cargo scans a directory given here recursively, so an added file counts too.
    println!("cargo:rerun-if-changed={}", root.display());

    let package_dir = root.join("omnichannel/v1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&package_dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| path.extension().is_some_and(|ext| ext == "proto"));
    // Sorted, so the generated code does not depend on the directory's listing order.
    files.sort();

    let descriptors = protox::compile(&files, [&root])?;
    let event_only = event_only(&descriptors)?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("event_only.rs"), event_only)?;
    prost_build::Config::new()
        // `prost::Name` on every message: decode errors name the message a field belongs to.
        .enable_type_names()
        // The events' `bytes` fields (their 16-byte ids) as `bytes::Bytes`: prost decodes a
        // `Vec<u8>` field through a temporary `Bytes`, two allocations and two copies per id; a
        // `Bytes` field costs one, and none at all when decoded from a `Bytes` buffer, as
        // replay does. Other schemas keep prost's default `Vec<u8>`.
        .bytes(event_messages(&descriptors))
        .compile_fds(descriptors)?;
    Ok(())
}

/// The Rust source of `EventOnly`: `omnichannel.v1.EventEnvelope` reduced to `occurred_at` and
/// the `event` oneof, with the tags read from the schema so that it cannot drift from it.
/// prost skips every other field of the envelope (ids, stream, actor) without decoding it.
fn event_only(descriptors: &prost_types::FileDescriptorSet) -> Result<String, Box<dyn Error>> {
    const TEMPLATE: &str = r#"/// `EventEnvelope` as replay reads it: the time and the event, nothing else.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct EventOnly {
    #[prost(int64, tag = "OCCURRED_AT")]
    pub occurred_at: i64,
    #[prost(oneof = "crate::pb::event_envelope::Event", tags = "EVENT_TAGS")]
    pub event: ::core::option::Option<crate::pb::event_envelope::Event>,
}
"#;
    let envelope = descriptors
        .file
        .iter()
        .filter(|file| file.package() == "omnichannel.v1")
        .flat_map(|file| &file.message_type)
        .find(|message| message.name() == "EventEnvelope")
        .ok_or("omnichannel.v1.EventEnvelope is not in the schema")?;
    let event_oneof = envelope
        .oneof_decl
        .iter()
        .position(|oneof| oneof.name() == "event")
        .ok_or("EventEnvelope has no `event` oneof")?;
    let event_tags: Vec<String> = envelope
        .field
        .iter()
        .filter(|field| field.oneof_index == Some(event_oneof as i32))
        .map(|field| field.number().to_string())
        .collect();
    let occurred_at = envelope
        .field
        .iter()
        .find(|field| field.name() == "occurred_at")
        .ok_or("EventEnvelope has no `occurred_at`")?
        .number();
    Ok(TEMPLATE
        .replace("OCCURRED_AT", &occurred_at.to_string())
        .replace("EVENT_TAGS", &event_tags.join(", ")))
}

/// The full names of the messages of `events.proto` (nested ones included, by prefix).
fn event_messages(descriptors: &prost_types::FileDescriptorSet) -> Vec<String> {
    descriptors
        .file
        .iter()
        .filter(|file| file.name().ends_with("/events.proto"))
        .flat_map(|file| {
            file.message_type
                .iter()
                .map(move |message| format!(".{}.{}", file.package(), message.name()))
        })
        .collect()
}
