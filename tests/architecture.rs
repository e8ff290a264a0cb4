//! Structural invariants of the workspace that no unit test would notice breaking.

use std::process::Command;

/// The crates the pure core must never reach, directly or through a dependency: IO runtimes,
/// the message bus, the storage engine.
const FORBIDDEN_IN_CORE: &[&str] = &["tokio", "async-nats", "sled", "mio", "socket2", "libc"];

#[test]
fn the_core_depends_on_no_runtime_bus_or_storage_crate() {
    assert_reaches_none("omni-core", FORBIDDEN_IN_CORE);
}

/// What a client of the engine must not reach: it talks to an engine over the bus like any
/// other client, never to its services, its store or its files.
const ENGINE_INTERNALS: &[&str] = &[
    "omni-engine",
    "omni-conversations",
    "omni-router",
    "omni-projector",
    "omni-presence",
    "omni-store",
];

#[test]
fn the_simulator_reaches_the_engine_only_over_the_bus() {
    assert_reaches_none("omni-simulate", ENGINE_INTERNALS);
    assert_reaches_none("omni-simulate", &["sled"]);
}

/// The gateway is a client like the simulator: commands, queries and presence on the bus.
/// Services that add routes to it (the webhooks, the dashboard) depend on it, never the reverse: the engine
/// hands their routes and OpenAPI paths to `Bound::serve`.
#[test]
fn the_gateway_reaches_the_engine_only_over_the_bus_and_no_service_it_serves() {
    assert_reaches_none("omni-gateway", ENGINE_INTERNALS);
    assert_reaches_none("omni-gateway", &["omni-webhooks", "omni-dashboard"]);
}

/// The webhook service keeps its own sled database, but reads the log only over the bus.
#[test]
fn the_webhook_service_reaches_the_engine_only_over_the_bus() {
    assert_reaches_none("omni-webhooks", ENGINE_INTERNALS);
}

fn assert_reaches_none(package: &str, forbidden: &[&str]) {
    let (crates, tree) = dependencies_of(package);
    for forbidden in forbidden {
        assert!(
            !crates.iter().any(|c| c == forbidden),
            "{package} depends on {forbidden}:\n{tree}"
        );
    }
}

/// The dashboard follows the log over the bus like any other client.
#[test]
fn the_dashboard_reaches_the_engine_only_over_the_bus() {
    assert_reaches_none("omni-dashboard", ENGINE_INTERNALS);
}

/// The crates `package` depends on (normal and build edges, transitively), and the tree.
fn dependencies_of(package: &str) -> (Vec<String>, String) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--package",
            package,
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
    let crates: Vec<String> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(
        crates.iter().any(|c| c == package),
        "unexpected tree: {tree}"
    );
    (crates, tree)
}
