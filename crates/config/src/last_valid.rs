//! The last valid configuration, as every daemon keeps it: each new reading is validated, a
//! valid one replaces the last, and an invalid one is reported while the last valid one
//! keeps running. The controller, the speaker and `ironlb standalone` share this one rule.

use crate::{Config, Outcome, Severity};
use api::v1beta1::{ConfigurationResult, ConfigurationStateStatus};

#[derive(Debug, Default)]
pub struct LastValid {
    config: Option<Config>,
    /// The latest reading's errors, as reported.
    errors: Vec<String>,
    /// Every problem of the latest reading, so an unchanged one is logged once, not per
    /// pass.
    logged: Vec<String>,
}

impl LastValid {
    /// Takes a new reading; true when it replaced the configuration with a different one.
    pub fn take(&mut self, outcome: Outcome) -> bool {
        let logged: Vec<String> = outcome.problems.iter().map(ToString::to_string).collect();
        if logged != self.logged {
            for p in &outcome.problems {
                match p.severity {
                    Severity::Error => {
                        tracing::error!(problem = %p, "configuration problem; the last valid configuration keeps running")
                    }
                    Severity::Warning => tracing::warn!(problem = %p, "configuration warning"),
                }
            }
            self.logged = logged;
        }
        self.errors = outcome.errors().map(ToString::to_string).collect();
        match outcome.config {
            Some(config) if self.config.as_ref() != Some(&config) => {
                self.config = Some(config);
                true
            }
            _ => false,
        }
    }

    /// The configuration running now; None until a reading was valid.
    pub fn config(&self) -> Option<&Config> {
        self.config.as_ref()
    }

    /// Whether the latest reading was invalid (the running configuration is older).
    pub fn stale(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The latest reading's verdict, as ConfigurationState reports it.
    pub fn state(&self) -> ConfigurationStateStatus {
        ConfigurationStateStatus {
            result: Some(if self.stale() {
                ConfigurationResult::Invalid
            } else {
                ConfigurationResult::Valid
            }),
            error_summary: self.errors.join("\n"),
            ..ConfigurationStateStatus::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan, namespace: metallb-system}\nspec: {addresses: [192.0.2.0/28]}\n";
    const OTHER: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan, namespace: metallb-system}\nspec: {addresses: [192.0.2.16/28]}\n";
    const BROKEN: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan, namespace: metallb-system}\nspec: {addresses: [192.0.2.300/28]}\n";

    #[test]
    fn an_invalid_reading_keeps_the_last_valid_configuration_running() {
        let mut last = LastValid::default();
        assert_eq!(last.state().result, Some(ConfigurationResult::Valid));
        assert!(last.config().is_none());

        assert!(
            last.take(crate::from_yaml(POOL, "a")),
            "the first valid one"
        );
        let first = last.config().cloned();
        assert!(!last.take(crate::from_yaml(POOL, "a")), "the same again");

        assert!(!last.take(crate::from_yaml(BROKEN, "b")));
        assert_eq!(last.config().cloned(), first, "still running");
        assert!(last.stale());
        let state = last.state();
        assert_eq!(state.result, Some(ConfigurationResult::Invalid));
        assert!(state.error_summary.contains("192.0.2.300"), "{state:?}");

        assert!(last.take(crate::from_yaml(OTHER, "c")), "a new valid one");
        assert_ne!(last.config().cloned(), first);
        assert_eq!(last.state().error_summary, "");
    }
}
