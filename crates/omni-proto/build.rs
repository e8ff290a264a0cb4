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
    prost_build::Config::new()
        // `prost::Name` on every message: decode errors name the message a field belongs to.
        .enable_type_names()
        // `bytes` fields (the 16-byte ids) as `bytes::Bytes`: prost decodes a `Vec<u8>` field
        // through a temporary `Bytes`, two allocations and two copies per id; a `Bytes` field
        // costs one (and none at all when decoding from a `Bytes` buffer).
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
