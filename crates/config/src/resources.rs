//! The raw inputs of a configuration, as read from files or from the API server.
//! Nothing here is validated yet; `build` turns it into a `Config`.

use api::legacy::LegacyConfig;
use api::standalone::StandaloneServiceSpec;
use api::v1beta1::{
    BFDProfileSpec, BGPAdvertisementSpec, CommunitySpec, IPAddressPoolSpec, L2AdvertisementSpec,
};
use api::v1beta2::BGPPeerSpec;
use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

/// Where an object's problems should point.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Origin {
    /// A custom resource the user wrote.
    #[default]
    Resource,
    /// Converted from the legacy ConfigMap; problems point at this path inside `data.config`.
    Legacy(String),
}

/// One named object with its spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Object<T> {
    pub name: String,
    pub labels: Labels,
    pub spec: T,
    /// A file name, when the object was read from one.
    pub source: Option<String>,
    pub origin: Origin,
}

impl<T> Object<T> {
    pub fn new(name: impl Into<String>, spec: T) -> Self {
        Object {
            name: name.into(),
            labels: Labels::new(),
            spec,
            source: None,
            origin: Origin::Resource,
        }
    }
}

/// A Secret as far as BGP passwords need it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Secret {
    pub type_: String,
    /// Decoded values of `data` and `stringData`.
    pub data: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    pub pools: Vec<Object<IPAddressPoolSpec>>,
    pub l2_advertisements: Vec<Object<L2AdvertisementSpec>>,
    pub bgp_advertisements: Vec<Object<BGPAdvertisementSpec>>,
    pub peers: Vec<Object<BGPPeerSpec>>,
    pub bfd_profiles: Vec<Object<BFDProfileSpec>>,
    pub communities: Vec<Object<CommunitySpec>>,
    /// Secrets in the MetalLB namespace, by name.
    pub secrets: BTreeMap<String, Secret>,
    /// Node name → labels. Empty when the nodes are not known (offline validation).
    pub nodes: BTreeMap<String, Labels>,
    /// Namespace name → labels, for `serviceAllocation.namespaceSelectors`.
    pub namespaces: BTreeMap<String, Labels>,
    /// The `metallb-system/config` ConfigMap, if present.
    pub legacy: Option<Object<LegacyConfig>>,
    /// The patterns of the `metallb-excludel2` ConfigMap, if present (valid ones only).
    pub interface_exclusions: Option<Vec<String>>,
    /// `ironlb.dev` StandaloneServices, which only `ironlb standalone` reads.
    pub services: Vec<Object<StandaloneServiceSpec>>,
}

impl Resources {
    /// Whether any `metallb.io` configuration resource is present; when so, it wins over
    /// the legacy ConfigMap.
    pub fn has_custom_resources(&self) -> bool {
        !(self.pools.is_empty()
            && self.l2_advertisements.is_empty()
            && self.bgp_advertisements.is_empty()
            && self.peers.is_empty()
            && self.bfd_profiles.is_empty()
            && self.communities.is_empty())
    }
}
