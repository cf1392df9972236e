//! BFDProfile ranges, with FRR's defaults filled in.

use super::report_for;
use crate::model::BfdProfile;
use crate::problem::{Problem, Report};
use crate::resources::Resources;
use std::collections::BTreeMap;

const KIND: &str = "BFDProfile";

pub fn validate(res: &Resources, out: &mut Vec<Problem>) -> BTreeMap<String, BfdProfile> {
    let mut profiles = BTreeMap::new();
    for object in &res.bfd_profiles {
        let mut report = report_for(KIND, object, out);
        let s = &object.spec;
        let profile = BfdProfile {
            name: object.name.clone(),
            receive_interval_ms: ranged(
                &mut report,
                "spec.receiveInterval",
                s.receive_interval,
                10..=60000,
                300,
            ),
            transmit_interval_ms: ranged(
                &mut report,
                "spec.transmitInterval",
                s.transmit_interval,
                10..=60000,
                300,
            ),
            detect_multiplier: ranged(
                &mut report,
                "spec.detectMultiplier",
                s.detect_multiplier,
                2..=255,
                3,
            ),
            echo_interval_ms: ranged(
                &mut report,
                "spec.echoInterval",
                s.echo_interval,
                10..=60000,
                50,
            ),
            echo_mode: s.echo_mode.unwrap_or(false),
            passive_mode: s.passive_mode.unwrap_or(false),
            minimum_ttl: ranged(&mut report, "spec.minimumTtl", s.minimum_ttl, 1..=254, 254),
        };
        if report.errors() == 0 {
            profiles.insert(object.name.clone(), profile);
        }
    }
    profiles
}

fn ranged(
    report: &mut Report<'_>,
    field: &str,
    value: Option<u32>,
    range: std::ops::RangeInclusive<u32>,
    default: u32,
) -> u32 {
    match value {
        Some(v) if !range.contains(&v) => {
            report.error(
                field,
                format!("{v} is out of range {}..{}", range.start(), range.end()),
                &format!(
                    "use a value from {} to {}, or leave it unset for {default}",
                    range.start(),
                    range.end()
                ),
            );
            default
        }
        v => v.unwrap_or(default),
    }
}
