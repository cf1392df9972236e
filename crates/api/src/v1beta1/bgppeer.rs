//! The deprecated v1beta1 BGPPeer. It is still served, and converted to v1beta2 on read.

use crate::{Duration, LabelSelector, LabelSelectorRequirement, v1beta2};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPPeer",
    doc = "A BGP session from the selected nodes to one router.",
    namespaced,
    served = true,
    storage = false,
    deprecated = "v1beta1 is deprecated, please use v1beta2",
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
    #[serde(rename = "myASN")]
    pub my_asn: u32,
    #[serde(rename = "peerASN")]
    pub peer_asn: u32,
    pub peer_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 16384))]
    pub peer_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<Duration>,
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<NodeSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_profile: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ebgp_multi_hop: bool,
}

/// v1beta1's own selector shape; it maps one to one onto a LabelSelector.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelector {
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub match_labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorRequirement>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: String,
    #[schemars(length(min = 1))]
    pub values: Vec<String>,
}

impl From<NodeSelector> for LabelSelector {
    fn from(s: NodeSelector) -> Self {
        LabelSelector {
            match_labels: (!s.match_labels.is_empty()).then_some(s.match_labels),
            match_expressions: (!s.match_expressions.is_empty()).then(|| {
                s.match_expressions
                    .into_iter()
                    .map(|e| LabelSelectorRequirement {
                        key: e.key,
                        operator: e.operator,
                        values: Some(e.values),
                    })
                    .collect()
            }),
        }
    }
}

impl From<BGPPeerSpec> for v1beta2::BGPPeerSpec {
    fn from(s: BGPPeerSpec) -> Self {
        v1beta2::BGPPeerSpec {
            my_asn: s.my_asn,
            peer_asn: Some(s.peer_asn),
            peer_address: Some(s.peer_address),
            source_address: s.source_address,
            peer_port: s.peer_port,
            hold_time: s.hold_time,
            keepalive_time: s.keepalive_time,
            router_id: s.router_id,
            node_selectors: s.node_selectors.into_iter().map(Into::into).collect(),
            password: s.password,
            bfd_profile: s.bfd_profile,
            ebgp_multi_hop: s.ebgp_multi_hop,
            ..Default::default()
        }
    }
}

spec_may_be_absent!(BGPPeerSpec);
