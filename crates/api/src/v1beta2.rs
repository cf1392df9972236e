//! `metallb.io/v1beta2`: BGPPeer, the storage version.

use crate::{Duration, LabelSelector};
use k8s_openapi::api::core::v1::SecretReference;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn default_port() -> Option<u16> {
    Some(179)
}

/// A BGP session from the selected nodes to one router.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta2",
    kind = "BGPPeer",
    doc = "A BGP session from the selected nodes to one router.",
    namespaced,
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "ASN", type_ = "string", json_path = ".spec.peerASN"),
    printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
    printcolumn(
        name = "Multi Hops",
        type_ = "string",
        json_path = ".spec.ebgpMultiHop"
    )
)]
#[serde(rename_all = "camelCase")]
#[serde(remote = "Self")]
pub struct BGPPeerSpec {
    /// The AS number the nodes speak as.
    #[serde(rename = "myASN")]
    pub my_asn: u32,
    /// The router's AS number. Exactly one of `peerASN` and `dynamicASN` is required.
    #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
    pub peer_asn: Option<u32>,
    #[serde(
        default,
        rename = "dynamicASN",
        skip_serializing_if = "Option::is_none"
    )]
    pub dynamic_asn: Option<DynamicASNMode>,
    /// The AS number presented to this peer instead of `myASN`.
    #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub local_asn: Option<u32>,
    /// The router's address. Exactly one of `peerAddress` and `interface` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,
    /// Unnumbered BGP over this host interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    #[serde(default = "default_port", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16384))]
    pub peer_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<Duration>,
    /// Whole seconds between 1 and 65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_time: Option<Duration>,
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// TCP MD5 key. Mutually exclusive with `passwordSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A `kubernetes.io/basic-auth` Secret whose `password` key holds the TCP MD5 key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_profile: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_graceful_restart: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ebgp_multi_hop: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,
    /// Deprecated; has no effect.
    #[serde(
        default,
        rename = "disableMP",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub disable_mp: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dual_stack_address_family: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DynamicASNMode {
    Internal,
    External,
}

spec_may_be_absent!(BGPPeerSpec);
