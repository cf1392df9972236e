//! Turns MetalLB's `metallb.io` resources and its legacy ConfigMap into one validated
//! [`Config`]. Every problem names the kind, the object, the field, what is wrong and how to
//! fix it, and all problems are reported at once.

pub mod addresses;
pub mod community;
pub mod documents;
pub mod last_valid;
pub mod legacy;
pub mod model;
pub mod problem;
pub mod resources;
pub mod selector;
mod validate;

pub use community::Community;
pub use last_valid::LastValid;
pub use model::{
    BfdProfile, BgpAdvertisement, Config, DynamicASNMode, L2Advertisement, Peer, PeerRemote, Pool,
    ServiceAllocation, Timers,
};
pub use problem::{ObjectRef, Problem, Severity};
pub use resources::{Object, Origin, Resources};
pub use selector::Selector;

use std::collections::BTreeMap;

/// The result of validation: the config when there is no error, and every problem found.
#[derive(Debug)]
pub struct Outcome {
    pub config: Option<Config>,
    pub problems: Vec<Problem>,
}

impl Outcome {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }
}

/// Validates resources that reading already found `problems` in: the outcome lists those
/// first, and has no config when any of them is an error.
pub fn build_read(resources: &Resources, mut problems: Vec<Problem>) -> Outcome {
    let outcome = build(resources);
    problems.extend(outcome.problems);
    let valid = !problems.iter().any(|p| p.severity == Severity::Error);
    Outcome {
        config: outcome.config.filter(|_| valid),
        problems,
    }
}

/// Reads one YAML text with the default options and validates it.
pub fn from_yaml(text: &str, source: &str) -> Outcome {
    let mut resources = Resources::default();
    let mut problems = Vec::new();
    documents::read(
        text,
        source,
        &documents::ReadOptions::default(),
        &mut resources,
        &mut problems,
    );
    build_read(&resources, problems)
}

/// Validates `resources`. When custom resources exist the legacy ConfigMap is ignored (with a
/// warning), as in MetalLB 0.13+; otherwise the ConfigMap is converted and validated.
pub fn build(resources: &Resources) -> Outcome {
    let mut problems = Vec::new();
    let converted;
    let res = match &resources.legacy {
        Some(legacy) if resources.has_custom_resources() => {
            validate::report_for("ConfigMap", legacy, &mut problems).warning(
                "",
                "both metallb.io resources and the legacy ConfigMap are present; the resources win and the ConfigMap is ignored",
                "delete the legacy ConfigMap once the resources are in place",
            );
            resources
        }
        Some(legacy) => {
            converted = Resources {
                secrets: resources.secrets.clone(),
                nodes: resources.nodes.clone(),
                namespaces: resources.namespaces.clone(),
                interface_exclusions: resources.interface_exclusions.clone(),
                ..legacy::to_resources(legacy, &mut problems)
            };
            &converted
        }
        None => resources,
    };
    let aliases = validate::communities::validate(res, &mut problems);
    let bfd_profiles = validate::bfd::validate(res, &mut problems);
    let pools = validate::pools::validate(res, &mut problems);
    // Every profile by name, valid or not, so that a peer naming an invalid one is not told
    // it is missing; with whether it asks for echo mode.
    let profile_echo: BTreeMap<String, bool> = res
        .bfd_profiles
        .iter()
        .map(|p| (p.name.clone(), p.spec.echo_mode.unwrap_or(false)))
        .collect();
    let peers = validate::peers::validate(res, &profile_echo, &mut problems);
    let inputs = validate::advertisements::BgpInputs {
        pools: &pools,
        peers: &peers,
        aliases: &aliases,
    };
    let bgp_advertisements = validate::advertisements::validate_bgp(res, &inputs, &mut problems);
    let l2_advertisements = validate::advertisements::validate_l2(res, &pools, &mut problems);
    let valid = !problems.iter().any(|p| p.severity == Severity::Error);
    Outcome {
        config: valid.then_some(Config {
            pools,
            peers,
            bfd_profiles,
            l2_advertisements,
            bgp_advertisements,
            interface_exclusions: res.interface_exclusions.clone(),
        }),
        problems,
    }
}
