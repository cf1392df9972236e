//! Rust types for MetalLB's `metallb.io` resources and its pre-0.13 ConfigMap.
//!
//! Field names, JSON casing, defaults, enums and printer columns follow MetalLB so that
//! existing manifests and `kubectl get` output keep working. This crate holds no logic beyond
//! serde defaults and the BGPPeer v1beta1 → v1beta2 conversion; validation lives in `config`.

// kube's `printcolumn(name = .., type_ = ..)` repeats keys across columns inside one derive
// attribute, which this lint mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

mod crd_shape;
pub mod legacy;
pub mod standalone;
pub mod v1beta1;
pub mod v1beta2;

/// The API group every ironlb/MetalLB resource belongs to.
pub const GROUP: &str = "metallb.io";

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, LabelSelectorRequirement,
};
pub use kube::core::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CustomResourceDefinition ironlb serves, BGPPeer with both versions (v1beta2 stored),
/// each in the shape of MetalLB's so that either project's CRDs can replace the other's.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let bgp_peer = kube::core::crd::merge_crds(
        vec![v1beta1::BGPPeer::crd(), v1beta2::BGPPeer::crd()],
        "v1beta2",
    )
    .expect("both BGPPeer versions share group, kind and scope by construction");
    vec![
        v1beta1::BFDProfile::crd(),
        v1beta1::BGPAdvertisement::crd(),
        bgp_peer,
        v1beta1::Community::crd(),
        v1beta1::ConfigurationState::crd(),
        v1beta1::IPAddressPool::crd(),
        v1beta1::L2Advertisement::crd(),
        v1beta1::ServiceBGPStatus::crd(),
        v1beta1::ServiceL2Status::crd(),
    ]
    .into_iter()
    .map(crd_shape::metallb_shape)
    .collect()
}
