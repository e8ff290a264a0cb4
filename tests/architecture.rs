//! Structural invariants of the workspace that no unit test would notice breaking.

use std::process::Command;

/// The crates the pure core must never reach, directly or through a dependency: IO runtimes,
/// the message bus, the storage engine.
const FORBIDDEN_IN_CORE: &[&str] = &["tokio", "async-nats", "sled", "mio", "socket2", "libc"];

#[test]
fn the_core_depends_on_no_runtime_bus_or_storage_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--package",
            "omni-core",
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).expect("utf-8");
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"omni-core"), "unexpected tree: {tree}");
    for forbidden in FORBIDDEN_IN_CORE {
        assert!(
            !crates.contains(forbidden),
            "omni-core depends on {forbidden}:\n{tree}"
        );
    }
}
