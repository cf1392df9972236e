//! What is wrong with a configuration, said so that a user can find and fix it.

use serde::Serialize;
use std::fmt;

/// The object a problem belongs to: `IPAddressPool "lan"`, or a part of the legacy ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectRef {
            kind: kind.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{} {:?}", self.kind, self.name)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The configuration is rejected.
    Error,
    /// The configuration is used, but something deserves attention.
    Warning,
}

/// One finding. `transient` marks a reference to an object that may simply not exist yet (a
/// Secret, a BFDProfile, a Community alias): the config is invalid for now, and becomes valid
/// without any edit once the object appears.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    #[serde(flatten)]
    pub object: ObjectRef,
    /// The field path inside the object, as the user wrote it (`spec.addresses[1]`).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
    /// Where the object came from (a file name), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Problem {
    /// The problem in one line without its level, as admission denials and warnings show it.
    pub fn line(&self) -> String {
        let mut line = self.object.to_string();
        if !self.field.is_empty() {
            line = format!("{line} {}", self.field);
        }
        line = format!("{line}: {}", self.message);
        if !self.fix.is_empty() {
            line = format!("{line}; fix: {}", self.fix);
        }
        if let Some(source) = &self.source {
            line = format!("{line} [{source}]");
        }
        line
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error if self.transient => "error (transient)",
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}", self.line())
    }
}

/// Collects problems for one object, so rules read as one line each.
pub struct Report<'a> {
    object: ObjectRef,
    source: Option<String>,
    /// For objects converted from the legacy ConfigMap: their path inside `data.config`.
    legacy_path: Option<String>,
    errors: usize,
    out: &'a mut Vec<Problem>,
}

impl<'a> Report<'a> {
    pub fn new(object: ObjectRef, source: Option<String>, out: &'a mut Vec<Problem>) -> Self {
        Report {
            object,
            source,
            legacy_path: None,
            errors: 0,
            out,
        }
    }

    /// Reports against the legacy ConfigMap at `path` instead of the converted object, with
    /// field names spelled as the ConfigMap spells them.
    pub fn in_legacy(mut self, path: &str) -> Self {
        self.object = ObjectRef::new(
            "ConfigMap",
            format!(
                "{}/{}",
                api::legacy::CONFIGMAP_NAMESPACE,
                api::legacy::CONFIGMAP_NAME
            ),
        );
        self.legacy_path = Some(path.to_string());
        self
    }

    fn push(
        &mut self,
        severity: Severity,
        transient: bool,
        field: &str,
        message: String,
        fix: &str,
    ) {
        if severity == Severity::Error {
            self.errors += 1;
        }
        let field = match &self.legacy_path {
            Some(path) => legacy_field(path, field),
            None => field.to_string(),
        };
        self.out.push(Problem {
            severity,
            object: self.object.clone(),
            field,
            message,
            fix: fix.to_string(),
            transient,
            source: self.source.clone(),
        });
    }

    /// How many errors this report has given so far.
    pub fn errors(&self) -> usize {
        self.errors
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>, fix: &str) {
        self.push(Severity::Error, false, field, message.into(), fix);
    }

    pub fn transient(&mut self, field: &str, message: impl Into<String>, fix: &str) {
        self.push(Severity::Error, true, field, message.into(), fix);
    }

    pub fn warning(&mut self, field: &str, message: impl Into<String>, fix: &str) {
        self.push(Severity::Warning, false, field, message.into(), fix);
    }

    /// A field MetalLB accepts but ironlb does not implement yet: refused, never ignored.
    pub fn unsupported(&mut self, field: &str, what: &str) {
        self.error(
            field,
            format!("{what} is not supported yet by ironlb"),
            "remove the field; ironlb will not silently ignore it",
        );
    }
}

/// Reports every repeat of a value already present earlier in a list.
pub fn report_duplicates<T: PartialEq + fmt::Debug>(
    report: &mut Report<'_>,
    field: &str,
    items: &[T],
) {
    for (i, item) in items.iter().enumerate() {
        if let Some(first) = items[..i].iter().position(|x| x == item) {
            report.error(
                &format!("{field}[{i}]"),
                format!("duplicate definition of {field} {item:?} (also at index {first})"),
                "remove the repeated entry",
            );
        }
    }
}

/// Spells a custom-resource field path (`spec.aggregationLength`) the way the legacy ConfigMap
/// does (`address-pools[0].bgp-advertisements[1].aggregation-length`).
fn legacy_field(path: &str, field: &str) -> String {
    let rest = field.strip_prefix("spec").unwrap_or(field);
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    let kebab: Vec<String> = rest
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|segment| match segment {
            "localPref" => "localpref".to_string(),
            "ebgpMultiHop" => "ebgp-multihop".to_string(),
            other => camel_to_kebab(other),
        })
        .collect();
    match (path.is_empty(), kebab.is_empty()) {
        (_, true) => path.to_string(),
        (true, false) => kebab.join("."),
        (false, false) => format!("{path}.{}", kebab.join(".")),
    }
}

fn camel_to_kebab(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut previous_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push('-');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::legacy_field;

    #[test]
    fn legacy_fields_use_configmap_spelling() {
        let cases = [
            (
                "address-pools[0]",
                "spec.avoidBuggyIPs",
                "address-pools[0].avoid-buggy-ips",
            ),
            ("peers[1]", "spec.myASN", "peers[1].my-asn"),
            ("peers[1]", "spec.routerID", "peers[1].router-id"),
            ("peers[0]", "spec.ebgpMultiHop", "peers[0].ebgp-multihop"),
            (
                "address-pools[2].bgp-advertisements[0]",
                "spec.localPref",
                "address-pools[2].bgp-advertisements[0].localpref",
            ),
            (
                "address-pools[2].bgp-advertisements[0]",
                "spec.aggregationLengthV6",
                "address-pools[2].bgp-advertisements[0].aggregation-length-v6",
            ),
            (
                "peers[0]",
                "spec.nodeSelectors[0].matchExpressions[1].values",
                "peers[0].node-selectors[0].match-expressions[1].values",
            ),
            (
                "address-pools[0]",
                "spec.addresses[3]",
                "address-pools[0].addresses[3]",
            ),
            ("peers[0]", "", "peers[0]"),
        ];
        for (path, field, want) in cases {
            assert_eq!(legacy_field(path, field), want, "{path} + {field}");
        }
    }
}
