//! Rust types for MetalLB's `metallb.io` resources and its pre-0.13 ConfigMap.
//!
//! Field names, JSON casing, defaults, enums and printer columns follow MetalLB so that
//! existing manifests and `kubectl get` output keep working. This crate holds no logic beyond
//! serde defaults and the BGPPeer v1beta1 → v1beta2 conversion; validation lives in `config`.

pub mod legacy;
pub mod v1beta1;
pub mod v1beta2;

/// The API group every ironlb/MetalLB resource belongs to.
pub const GROUP: &str = "metallb.io";

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, LabelSelectorRequirement,
};
pub use kube::core::Duration;
