//! The rules, one module per kind. Each returns the valid part of its input and reports the
//! rest, so all problems of a configuration are found in one pass.

pub mod advertisements;
pub mod bfd;
pub mod communities;
pub mod peers;
pub mod pools;

use crate::problem::{ObjectRef, Problem, Report};
use crate::resources::{Object, Origin};

/// A report for one object, pointing into the legacy ConfigMap when it came from there.
pub(crate) fn report_for<'a, T>(
    kind: &str,
    object: &Object<T>,
    out: &'a mut Vec<Problem>,
) -> Report<'a> {
    let report = Report::new(
        ObjectRef::new(kind, &object.name),
        object.source.clone(),
        out,
    );
    match &object.origin {
        Origin::Resource => report,
        Origin::Legacy(path) => report.in_legacy(path),
    }
}
