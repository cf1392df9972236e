//! Admission of metallb.io objects: whether a create, update or delete leaves a configuration
//! ironlb can run. The decision is pure (`decide`), made by the validator `ironlb validate`
//! and the daemons use, over the configuration as it is (`current`, read from the API server
//! at each call as MetalLB's webhooks read it) with the change applied.
//!
//! Only errors the change brings are refused: a cluster whose configuration is already broken
//! can still be mended one object at a time. References to objects that may simply not
//! exist yet (a BFDProfile, a Secret, a Community alias) are warnings, so `kubectl apply -f`
//! of a directory succeeds in any order, as with MetalLB.

mod current;

pub use current::current;

use config::documents::{self, ReadOptions};
use config::{Problem, Resources, Severity};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde_json::Value;

/// The kinds MetalLB's webhooks admit, each at the path MetalLB serves it on.
pub const PATHS: [(&str, &str); 6] = [
    ("BGPPeer", "/validate-metallb-io-v1beta2-bgppeer"),
    ("BFDProfile", "/validate-metallb-io-v1beta1-bfdprofile"),
    (
        "BGPAdvertisement",
        "/validate-metallb-io-v1beta1-bgpadvertisement",
    ),
    ("Community", "/validate-metallb-io-v1beta1-community"),
    (
        "IPAddressPool",
        "/validate-metallb-io-v1beta1-ipaddresspool",
    ),
    (
        "L2Advertisement",
        "/validate-metallb-io-v1beta1-l2advertisement",
    ),
];

/// One requested change, as far as the decision needs it.
#[derive(Clone, Debug)]
pub struct Change<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub operation: Operation,
    /// The object as it would be stored; none for a delete.
    pub object: Option<&'a Value>,
}

/// What admission answers: refused with the reason, and warnings either way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    pub refused: Option<String>,
    pub warnings: Vec<String>,
}

/// The verdict on `change` to a cluster whose configuration in `namespace` is `current`.
pub fn decide(change: &Change, namespace: &str, current: &Resources) -> Verdict {
    match (&change.operation, change.object) {
        (Operation::Delete, _) if change.kind == "BFDProfile" => delete_profile(change, current),
        (Operation::Create | Operation::Update, Some(object)) => {
            if let Some(ns) = change.namespace.filter(|ns| *ns != namespace) {
                return refuse(format!(
                    "{} {ns}/{}: MetalLB configuration lives only in namespace {namespace:?}, and ironlb reads no other; create it in {namespace:?}",
                    change.kind, change.name
                ));
            }
            write(object, namespace, current)
        }
        _ => Verdict::default(),
    }
}

fn refuse(reason: String) -> Verdict {
    Verdict {
        refused: Some(reason),
        warnings: Vec::new(),
    }
}

/// MetalLB refuses to delete a profile a peer still names; so does ironlb, naming them all.
fn delete_profile(change: &Change, current: &Resources) -> Verdict {
    let mut users: Vec<&str> = current
        .peers
        .iter()
        .filter(|p| p.spec.bfd_profile.as_deref() == Some(change.name))
        .map(|p| p.name.as_str())
        .collect();
    users.sort();
    if users.is_empty() {
        return Verdict::default();
    }
    refuse(format!(
        "BFDProfile {:?} is used by BGPPeer {}: remove spec.bfdProfile from them or point it at another profile, then delete this one",
        change.name,
        users.join(", ")
    ))
}

fn write(object: &Value, namespace: &str, current: &Resources) -> Verdict {
    let mut changed = Resources::default();
    let mut read = Vec::new();
    let options = ReadOptions {
        namespace: namespace.to_string(),
    };
    documents::read(&object.to_string(), "", &options, &mut changed, &mut read);
    let mut after = current.clone();
    after.upsert(changed);
    let before = lines(config::build(current).problems);
    let new: Vec<Problem> = config::build_read(&after, read)
        .problems
        .into_iter()
        .map(without_source)
        .filter(|p| !before.contains(&p.line()))
        .collect();
    let (refused, warnings): (Vec<Problem>, Vec<Problem>) = new
        .into_iter()
        .partition(|p| p.severity == Severity::Error && !p.transient);
    Verdict {
        refused: (!refused.is_empty()).then(|| first_per_field(&refused).join("\n")),
        warnings: warnings.iter().map(Problem::line).collect(),
    }
}

/// One line per object and field: a range split into CIDRs would otherwise repeat one
/// overlap for every piece.
fn first_per_field(problems: &[Problem]) -> Vec<String> {
    let mut lines: Vec<(String, String, usize)> = Vec::new();
    for p in problems {
        let key = format!("{} {}", p.object, p.field);
        match lines.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, more)) => *more += 1,
            None => lines.push((key, p.line(), 0)),
        }
    }
    lines
        .into_iter()
        .map(|(_, line, more)| match more {
            0 => line,
            n => format!("{line} (and {n} more like it)"),
        })
        .collect()
}

/// The problems as admission compares them: one line each.
fn lines(problems: Vec<Problem>) -> Vec<String> {
    problems
        .into_iter()
        .map(|p| without_source(p).line())
        .collect()
}

/// Admission reads no file, and the reader's empty source would show as `[]`.
fn without_source(mut problem: Problem) -> Problem {
    problem.source = None;
    problem
}

/// The API server's request as a `Change`, decided and answered.
pub fn review(
    request: &AdmissionRequest<DynamicObject>,
    namespace: &str,
    current: &Resources,
) -> AdmissionResponse {
    let object = request
        .object
        .as_ref()
        .and_then(|o| serde_json::to_value(o).ok());
    let change = Change {
        kind: &request.kind.kind,
        name: &request.name,
        namespace: request.namespace.as_deref(),
        operation: request.operation.clone(),
        object: object.as_ref(),
    };
    let verdict = decide(&change, namespace, current);
    answer(request, verdict)
}

/// The response for `request`: allowed or denied with the reason, and the warnings, which
/// kubectl prints.
pub fn answer(request: &AdmissionRequest<DynamicObject>, verdict: Verdict) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request);
    if !verdict.warnings.is_empty() {
        response.warnings = Some(verdict.warnings);
    }
    match verdict.refused {
        // 403, as MetalLB's webhooks refuse: kubectl says "Error from server (Forbidden)".
        Some(reason) => {
            let mut denied = response.deny(reason);
            denied.result.code = 403;
            denied.result.reason = "Forbidden".into();
            denied
        }
        None => response,
    }
}
