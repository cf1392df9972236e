//! Configuration and object fixtures, written once for every crate's tests and benches.

use ::config::documents::{ReadOptions, read};
use ::config::{Config, Resources};
use serde_json::Value;

/// A validated config from YAML documents; any problem fails the caller, one per line.
pub fn config(yaml: &str) -> Config {
    let outcome = ::config::from_yaml(yaml, "test");
    let listing = listing(&outcome.problems);
    outcome
        .config
        .unwrap_or_else(|| panic!("the test config is invalid:\n{listing}"))
}

/// The resources of YAML or JSON documents, read without validation (as the API server
/// would hold them); a document that cannot be read fails the caller.
pub fn resources(yaml: &str) -> Resources {
    let mut resources = Resources::default();
    let mut problems = Vec::new();
    read(
        yaml,
        "test",
        &ReadOptions::default(),
        &mut resources,
        &mut problems,
    );
    assert!(
        problems.is_empty(),
        "unreadable test documents:\n{}",
        listing(&problems)
    );
    resources
}

/// Merges `extra` into `base` the way a JSON merge patch does (without its null deletions),
/// so that a fixture states only what it changes in a base object.
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn listing(problems: &[::config::Problem]) -> String {
    problems.iter().map(|p| format!("  {p}\n")).collect()
}
