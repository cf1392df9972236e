//! Kubernetes label selectors, parsed once and matched without allocation.

use crate::problem::{Report, report_duplicates};
use api::LabelSelector;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Requirement {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A selector in canonical form: requirements sorted, values sorted, so equal selectors
/// compare equal however they were written. An empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector {
    requirements: BTreeSet<Requirement>,
}

impl Selector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// `matchLabels: {k: v}` as a selector; used for legacy and generated objects.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Self {
        Selector {
            requirements: labels
                .iter()
                .map(|(k, v)| Requirement::In(k.clone(), BTreeSet::from([v.clone()])))
                .collect(),
        }
    }
}

/// Whether any selector in the list matches; an empty list matches everything.
pub fn any_matches(selectors: &[Selector], labels: &BTreeMap<String, String>) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

/// Parses a list of selectors at `field`, reporting bad operators, missing or stray values,
/// duplicate values, duplicate expressions and duplicate selectors.
pub fn parse_list(report: &mut Report<'_>, field: &str, list: &[LabelSelector]) -> Vec<Selector> {
    let parsed: Vec<Selector> = list
        .iter()
        .enumerate()
        .map(|(i, s)| parse(report, &format!("{field}[{i}]"), s))
        .collect();
    report_duplicates(report, field, &parsed);
    parsed
}

pub fn parse(report: &mut Report<'_>, field: &str, sel: &LabelSelector) -> Selector {
    let mut requirements = BTreeSet::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        let problem = key_problem(k).or_else(|| value_problem(v));
        if let Some(problem) = problem {
            report.error(&format!("{field}.matchLabels"), problem, LABEL_FIX);
            continue;
        }
        requirements.insert(Requirement::In(k.clone(), BTreeSet::from([v.clone()])));
    }
    for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
        let at = format!("{field}.matchExpressions[{i}]");
        if expr.key.is_empty() {
            report.error(
                &format!("{at}.key"),
                "the match expression has no key",
                "set key to the label the expression tests",
            );
            continue;
        }
        let values = expr.values.clone().unwrap_or_default();
        let bad = key_problem(&expr.key).or_else(|| values.iter().find_map(|v| value_problem(v)));
        if let Some(problem) = bad {
            report.error(&at, problem, LABEL_FIX);
            continue;
        }
        let set: BTreeSet<String> = values.iter().cloned().collect();
        if set.len() != values.len() {
            report.error(
                &format!("{at}.values"),
                format!("duplicate values in {values:?}"),
                "list each value once",
            );
        }
        let key = expr.key.clone();
        let requirement = match expr.operator.as_str() {
            "In" | "NotIn" if set.is_empty() => {
                report.error(
                    &format!("{at}.values"),
                    format!("operator {} needs at least one value", expr.operator),
                    "add values, or use Exists/DoesNotExist",
                );
                continue;
            }
            "In" => Requirement::In(key, set),
            "NotIn" => Requirement::NotIn(key, set),
            "Exists" | "DoesNotExist" if !set.is_empty() => {
                report.error(
                    &format!("{at}.values"),
                    format!("operator {} takes no values", expr.operator),
                    "remove the values, or use In/NotIn",
                );
                continue;
            }
            "Exists" => Requirement::Exists(key),
            "DoesNotExist" => Requirement::DoesNotExist(key),
            other => {
                report.error(
                    &format!("{at}.operator"),
                    format!("unknown operator {other:?}"),
                    "use one of In, NotIn, Exists, DoesNotExist",
                );
                continue;
            }
        };
        if !requirements.insert(requirement) {
            report.error(
                &at,
                "duplicate match expression",
                "remove the repeated expression",
            );
        }
    }
    Selector { requirements }
}

const LABEL_FIX: &str = "label keys are [prefix/]name, names and values at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";

/// Why `key` cannot be a label key (Kubernetes' qualified name), as the API server checks.
fn key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    (!prefix_ok || name.is_empty() || !is_label_text(name))
        .then(|| format!("{key:?} is not a valid label key"))
}

/// Why `value` cannot be a label value (empty is allowed).
fn value_problem(value: &str) -> Option<String> {
    (!value.is_empty() && !is_label_text(value))
        .then(|| format!("{value:?} is not a valid label value"))
}

fn is_label_text(s: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= 63
        && alnum(s.chars().next())
        && alnum(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
