//! Test support shared by the plan's tests.

use config::{Config, from_yaml};

/// A validated config from YAML documents; any problem fails the test.
pub fn config(yaml: &str) -> Config {
    let outcome = from_yaml(yaml, "test");
    let problems = outcome.problems;
    outcome.config.unwrap_or_else(|| panic!("{problems:?}"))
}
