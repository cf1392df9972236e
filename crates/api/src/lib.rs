//! Rust types for MetalLB's `metallb.io` resources and its pre-0.13 ConfigMap.
//!
//! Field names, JSON casing, defaults, enums and printer columns follow MetalLB so that
//! existing manifests and `kubectl get` output keep working. This crate holds no logic beyond
//! serde defaults and the BGPPeer conversion between v1beta1 and v1beta2; validation lives in `config`.

// kube's `printcolumn(name = .., type_ = ..)` repeats keys across columns inside one derive
// attribute, which this lint mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

/// Makes an absent or null `spec` read as `spec: {}` (with the fields' own defaults) for
/// specs derived with `#[serde(remote = "Self")]`, which turns the derived (de)serializer
/// into inherent functions that the impls here wrap.
///
/// MetalLB's CRDs leave `spec` optional for every kind but IPAddressPool, and its docs'
/// commonest objects have none: an L2Advertisement or BGPAdvertisement for every pool. The
/// root types kube derives require the field, so one such object would fail every list of
/// its kind. serde asks a missing field's type to read itself from "nothing" as an option,
/// which is the `None` arm below. A kind whose `spec: {}` does not read (BGPPeer needs its
/// `myASN`) reads as its `Default` instead, for validation to report by field.
macro_rules! spec_may_be_absent {
    ($($spec:ty),+ $(,)?) => {$(
        impl<'de> serde::Deserialize<'de> for $spec {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Present($spec);
                impl<'de> serde::Deserialize<'de> for Present {
                    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                        <$spec>::deserialize(d).map(Present)
                    }
                }
                match Option::<Present>::deserialize(d)? {
                    Some(Present(spec)) => Ok(spec),
                    None => Ok(<$spec>::deserialize(
                        serde::de::value::MapDeserializer::<_, D::Error>::new(
                            std::iter::empty::<(&str, ())>(),
                        ),
                    )
                    .unwrap_or_default()),
                }
            }
        }

        impl serde::Serialize for $spec {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                <$spec>::serialize(self, s)
            }
        }
    )+};
}

pub mod conversion;
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
    let bgp_peer = converted_by_webhook(bgp_peer);
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

/// The controller converts BGPPeer between its versions (`conversion`), at MetalLB's Service
/// and path; the controller writes the CA bundle in once it has made its keys.
fn converted_by_webhook(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceConversion, ServiceReference, WebhookClientConfig, WebhookConversion,
    };
    crd.spec.conversion = Some(CustomResourceConversion {
        strategy: "Webhook".into(),
        webhook: Some(WebhookConversion {
            client_config: Some(WebhookClientConfig {
                service: Some(ServiceReference {
                    name: "metallb-webhook-service".into(),
                    namespace: "metallb-system".into(),
                    path: Some("/convert".into()),
                    port: None,
                }),
                ..WebhookClientConfig::default()
            }),
            conversion_review_versions: vec!["v1".into()],
        }),
    });
    crd
}
