//! Naming what differs between two worlds, one line per differing field.

use omni_core::World;
use serde_json::Value;

/// At most this many differences are listed: past that the first ones tell the story.
const MAX_DIFFERENCES: usize = 50;

/// The differences between `expected` and `actual`, as `path: expected != actual` lines.
pub fn diff(expected: &World, actual: &World) -> Vec<String> {
    if expected == actual {
        return Vec::new();
    }
    let expected = serde_json::to_value(expected).expect("the world always serialises");
    let actual = serde_json::to_value(actual).expect("the world always serialises");
    let mut out = Vec::new();
    walk("", &expected, &actual, &mut out);
    if out.len() > MAX_DIFFERENCES {
        let more = out.len() - MAX_DIFFERENCES;
        out.truncate(MAX_DIFFERENCES);
        out.push(format!("… and {more} more"));
    }
    out
}

fn walk(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, ev) in e {
                let sub = format!("{path}.{key}");
                match a.get(key) {
                    Some(av) => walk(&sub, ev, av, out),
                    None => out.push(format!(
                        "{sub}: present in the snapshot, missing in the rebuild"
                    )),
                }
            }
            for key in a.keys().filter(|k| !e.contains_key(*k)) {
                out.push(format!(
                    "{path}.{key}: missing in the snapshot, present in the rebuild"
                ));
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                walk(&format!("{path}[{i}]"), ev, av, out);
            }
        }
        _ if expected != actual => out.push(format!(
            "{}: {expected} != {actual}",
            path.trim_start_matches('.')
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omni_core::{AgentId, AgentProfile, Command, PresenceId, Timestamp, apply, decide};

    #[test]
    fn a_changed_field_is_named_with_its_path() {
        let mut world = World::default();
        let agent = AgentId::from_u128(1);
        let profile = AgentProfile {
            id: agent,
            name: "Ann".into(),
            capacity_units: 3,
            skills: Default::default(),
            max_sessions: 10,
            default_presence: PresenceId::AVAILABLE,
        };
        for e in decide(&world, Command::ProvisionAgent(profile), Timestamp(0)).unwrap() {
            apply(&mut world, &e);
        }
        let mut changed = world.clone();
        changed.agents.get_mut(&agent).unwrap().used_units = 2;
        assert!(diff(&world, &world).is_empty());
        let lines = diff(&world, &changed);
        assert_eq!(lines, [format!("agents.{}.used_units: 0 != 2", agent.0)]);
    }
}
