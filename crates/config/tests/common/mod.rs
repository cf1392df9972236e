//! Shared helpers for the configuration rule tables.

use ironlb_config::{Outcome, Problem, Severity, from_yaml};

pub fn validate(yaml: &str) -> Outcome {
    from_yaml(yaml, "test.yaml")
}

/// What a case expects: no error at all, or one specific problem.
pub enum Expect {
    Valid,
    Error(&'static str, &'static str, &'static str),
    Transient(&'static str, &'static str, &'static str),
    Warning(&'static str, &'static str, &'static str),
}

pub fn check(name: &str, yaml: &str, expect: &Expect) -> Result<(), String> {
    let outcome = validate(yaml);
    let listing = || {
        outcome
            .problems
            .iter()
            .map(|p| format!("  {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let matches = |p: &Problem, object: &str, field: &str, text: &str| {
        p.object.to_string() == object
            && p.field == field
            && p.message.contains(text)
            && !p.fix.is_empty()
    };
    let found =
        match expect {
            Expect::Valid => outcome.config.is_some() && outcome.errors().next().is_none(),
            Expect::Error(o, f, t) => {
                outcome.config.is_none()
                    && outcome.problems.iter().any(|p| {
                        p.severity == Severity::Error && !p.transient && matches(p, o, f, t)
                    })
            }
            Expect::Transient(o, f, t) => {
                outcome.config.is_none()
                    && outcome.problems.iter().any(|p| {
                        p.severity == Severity::Error && p.transient && matches(p, o, f, t)
                    })
            }
            Expect::Warning(o, f, t) => {
                outcome.config.is_some()
                    && outcome
                        .problems
                        .iter()
                        .any(|p| p.severity == Severity::Warning && matches(p, o, f, t))
            }
        };
    if found {
        Ok(())
    } else {
        Err(format!("case {name:?} failed; problems:\n{}", listing()))
    }
}
